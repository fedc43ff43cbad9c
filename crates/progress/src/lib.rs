//! `progress`: the process's progress bars, drawn together.
//!
//! `traitwatch run` shows the plan's bar while each stage (finetuning, drift, EM) shows its
//! own, and both log through `tracing`. Separate bars redraw over each other and a log line
//! printed mid-redraw tears a bar in two. Every bar here joins one [`MultiProgress`], and
//! [`LogWriter`] hides the bars while a log line is written, then redraws them below it.
//! On a stream that is not a terminal (Slurm, CI, `nohup`) indicatif draws nothing and log
//! lines pass straight through.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::Write;
use std::sync::OnceLock;

/// The process's bars, drawn on stderr.
pub fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(MultiProgress::new)
}

/// A bar of `len` steps in the process's set, styled by `template` (indicatif's syntax;
/// a bad template falls back to the default style).
pub fn bar(len: u64, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    multi().add(ProgressBar::new(len).with_style(style))
}

/// Log output to stderr that suspends the bars for the length of each write.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        multi().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_share_one_set_and_writes_pass_through() {
        let a = bar(10, "{bar} {pos}/{len}");
        let b = bar(5, "{not a valid template");
        a.inc(3);
        b.inc(5);
        assert_eq!((a.position(), b.position()), (3, 5));
        let mut w = LogWriter;
        assert_eq!(w.write(b"a log line\n").unwrap(), 11);
        w.flush().unwrap();
    }
}
