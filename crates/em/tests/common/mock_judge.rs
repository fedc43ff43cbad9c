//! A scripted OpenAI-compatible chat-completions server on loopback, for testing the judge
//! client: every request is recorded, and a script decides each reply (status, headers,
//! body), so rate limits, server errors and malformed replies can be staged.

#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The user message sent to the judge.
    pub fn prompt(&self) -> &str {
        self.body["messages"][0]["content"].as_str().unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// 200 with `content` as the assistant message.
pub fn text_reply(content: &str) -> Reply {
    let body = json!({
        "id": "mock", "object": "chat.completion", "model": "mock-judge",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}]
    });
    Reply {
        status: 200,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

/// 200 with one generated token and these top log-probabilities.
pub fn logprob_reply(top: &[(&str, f64)]) -> Reply {
    let top: Vec<Value> = top
        .iter()
        .map(|(t, lp)| json!({"token": t, "logprob": lp}))
        .collect();
    let body = json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": top[0]["token"]},
                     "logprobs": {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                                               "top_logprobs": top}]}}]
    });
    Reply {
        status: 200,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

pub fn status_reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

type Script = dyn Fn(usize, &Request) -> Reply + Send + Sync;

pub struct MockJudge {
    /// Base URL to give the client (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Most requests the server was handling at the same time.
    pub max_in_flight: Arc<AtomicUsize>,
}

impl MockJudge {
    /// Start serving; `script(i, request)` answers the `i`-th request (0-based, in arrival
    /// order); each reply is held for `hold` before it is sent.
    pub fn start(
        hold: Duration,
        script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let (reqs, max) = (requests.clone(), max_in_flight.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (reqs, max, in_flight, script) =
                    (reqs.clone(), max.clone(), in_flight.clone(), script.clone());
                std::thread::spawn(move || {
                    serve(stream, &reqs, hold, &*script, (&in_flight, &max));
                });
            }
        });
        Self {
            url,
            requests,
            max_in_flight,
        }
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Answer one request. A request counts as in flight from when it has been read until
/// its reply is written: counting the connection's whole thread instead would overlap a
/// client's next request with the tail of its last one and overstate concurrency.
fn serve(
    stream: TcpStream,
    reqs: &Mutex<Vec<Request>>,
    hold: Duration,
    script: &Script,
    (in_flight, max): (&AtomicUsize, &AtomicUsize),
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).unwrap();
    let request = Request {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let index = {
        let mut r = reqs.lock().unwrap();
        r.push(request.clone());
        r.len() - 1
    };
    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    max.fetch_max(now, Ordering::SeqCst);
    let reply = script(index, &request);
    std::thread::sleep(hold);
    in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut out = format!(
        "HTTP/1.1 {} Mock\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}
