//! Draw targets from a results directory without the traitwatch CLI:
//! `cargo run -p figures --example render -- <results> <out> fig1 fig2 ... tables`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: render <results> <out> <target>...");
        std::process::exit(2);
    }
    let (results, out) = (
        std::path::Path::new(&args[0]),
        std::path::Path::new(&args[1]),
    );
    let mut failed = false;
    for t in &args[2..] {
        let result = figures::Target::parse(t).and_then(|target| {
            figures::render(target, results, out, &figures::Provenance::default())
        });
        match result {
            Ok(files) => eprintln!("{t}: {} files", files.len()),
            Err(e) => {
                eprintln!("{t}: {e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
