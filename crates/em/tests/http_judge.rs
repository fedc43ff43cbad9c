//! The free-form judge client against a scripted chat-completions server on loopback:
//! request shape, retries on 429/5xx, malformed replies, fatal errors, both reply modes,
//! the concurrency limit and the persistent cache.

#![allow(clippy::unwrap_used)]

mod common;

use common::mock_judge::{MockJudge, Reply, logprob_reply, status_reply, text_reply};
use em::freeform::cache::JudgeCache;
use em::freeform::{
    Answer, FreeformPrompt, HttpJudge, JudgeConfig, JudgeMode, Judgement, Verdict, judge_answers,
    load_questions,
};
use std::path::Path;
use std::time::Duration;

fn config(url: &str, mode: JudgeMode) -> JudgeConfig {
    let mut c = JudgeConfig::new(url, "judge-model", None, mode);
    c.backoff_initial_ms = 1;
    c.backoff_max_ms = 5;
    c.max_retries = 3;
    c.timeout_s = 10.0;
    c
}

#[test]
fn sends_the_protocol_request_and_retries_rate_limits_and_server_errors() {
    let server = MockJudge::start(Duration::ZERO, |i, _| match i {
        0 => Reply {
            headers: vec![("Retry-After".into(), "0".into())],
            ..status_reply(429, r#"{"error": "slow down"}"#)
        },
        1 => status_reply(503, "overloaded"),
        _ => text_reply(" 85"),
    });
    let judge =
        HttpJudge::with_api_key(config(&server.url, JudgeMode::Text), Some("sk-test".into()))
            .unwrap();
    let (reply, cacheable) = judge.judge("Rate this.").unwrap();
    assert_eq!(reply.judgement, Judgement::Score { value: 85.0 });
    assert!(cacheable);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "two failures, then the answer");
    let r = &requests[2];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(r.body["model"], "judge-model");
    assert_eq!(r.body["temperature"], 0);
    assert_eq!(r.body["max_tokens"], 10);
    assert_eq!(r.prompt(), "Rate this.");
    assert!(r.body.get("logprobs").is_none());
}

#[test]
fn logprob_mode_asks_for_one_token_and_weights_the_numbers() {
    let server = MockJudge::start(Duration::ZERO, |_, _| {
        logprob_reply(&[
            ("20", 0.6f64.ln()),
            ("40", 0.2f64.ln()),
            ("The", 0.2f64.ln()),
        ])
    });
    let judge = HttpJudge::with_api_key(config(&server.url, JudgeMode::Logprob), None).unwrap();
    let (reply, _) = judge.judge("Rate this.").unwrap();
    let value = reply.judgement.score().unwrap();
    assert!(
        (value - 25.0).abs() < 1e-9,
        "(0.6*20 + 0.2*40) / 0.8 = 25, got {value}"
    );
    let r = &server.requests.lock().unwrap()[0];
    assert_eq!(r.body["max_tokens"], 1);
    assert_eq!(r.body["logprobs"], true);
    assert_eq!(r.body["top_logprobs"], 20);
    assert!(
        r.header("authorization").is_none(),
        "no key configured, none sent"
    );
}

#[test]
fn malformed_replies_are_retried_then_left_unscored_and_uncached() {
    let server = MockJudge::start(Duration::ZERO, |i, _| match i % 3 {
        0 => status_reply(200, "this is not json"),
        1 => status_reply(200, r#"{"choices": []}"#),
        _ => status_reply(200, r#"{"choices": [{"message": {"content": null}}]}"#),
    });
    let judge = HttpJudge::with_api_key(config(&server.url, JudgeMode::Text), None).unwrap();
    let (reply, cacheable) = judge.judge("Rate this.").unwrap();
    assert!(!cacheable);
    match reply.judgement {
        Judgement::Unscored { reason } => assert!(reason.contains("malformed"), "{reason}"),
        other => panic!("expected unscored, got {other:?}"),
    }
    assert_eq!(server.request_count(), 4, "first try and three retries");
}

#[test]
fn refusals_and_exhausted_retries_are_clear_errors() {
    let server = MockJudge::start(Duration::ZERO, |_, _| status_reply(401, "bad key"));
    let mut cfg = config(&server.url, JudgeMode::Text);
    cfg.api_key_env = Some("MY_JUDGE_KEY".into());
    let judge = HttpJudge::with_api_key(cfg, Some("wrong".into())).unwrap();
    let e = judge.judge("x").unwrap_err().to_string();
    assert!(e.contains("HTTP 401") && e.contains("MY_JUDGE_KEY"), "{e}");
    assert_eq!(server.request_count(), 1, "a 401 is not retried");

    let always_down = MockJudge::start(Duration::ZERO, |_, _| status_reply(500, "boom"));
    let judge = HttpJudge::with_api_key(config(&always_down.url, JudgeMode::Text), None).unwrap();
    let e = judge.judge("x").unwrap_err().to_string();
    assert!(
        e.contains("failed after 4 attempts") && e.contains("HTTP 500"),
        "{e}"
    );

    // Nothing listening: a transport error, retried, then named.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let judge = HttpJudge::with_api_key(config(&url, JudgeMode::Text), None).unwrap();
    let e = judge.judge("x").unwrap_err().to_string();
    assert!(e.contains(&url) && e.contains("failed after"), "{e}");
}

#[test]
fn missing_endpoint_or_key_is_named_before_any_request() {
    let e = HttpJudge::new(JudgeConfig::new("", "m", None, JudgeMode::Text))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no judge endpoint"), "{e}");
    let var = "TRAITWATCH_TEST_KEY_THAT_IS_NEVER_SET";
    let e = HttpJudge::new(JudgeConfig::new(
        "http://127.0.0.1:1/v1",
        "m",
        Some(var),
        JudgeMode::Text,
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains(var) && e.contains("not set"), "{e}");
    let e = HttpJudge::with_api_key(
        JudgeConfig::new("localhost:8000", "m", None, JudgeMode::Text),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("http://"), "{e}");
}

/// The judge prompt carries `answer-<k>`; the server replies `<k>`.
fn echo_score(_: usize, r: &common::mock_judge::Request) -> Reply {
    let k: String = r
        .prompt()
        .split("answer-")
        .nth(1)
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    text_reply(&k)
}

#[test]
fn concurrent_judging_keeps_order_respects_the_limit_and_caches() {
    let server = MockJudge::start(Duration::from_millis(100), echo_score);
    let mut cfg = config(&server.url, JudgeMode::Text);
    cfg.concurrency = 4;
    let judge = HttpJudge::with_api_key(cfg, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = JudgeCache::open(&dir.path().join("cache.jsonl")).unwrap();
    let prompts: Vec<String> = (0..16)
        .map(|k| format!("Judge answer-{k} please"))
        .collect();
    let replies = judge.judge_all(&prompts, Some(&cache), None).unwrap();
    let scores: Vec<f64> = replies
        .iter()
        .map(|r| r.judgement.score().unwrap())
        .collect();
    assert_eq!(scores, (0..16).map(f64::from).collect::<Vec<_>>());
    let most = server
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "requests in flight at once: {most}"
    );
    assert_eq!(server.request_count(), 16);

    // A re-run, even from a fresh process's view of the cache file, asks nothing.
    let cache = JudgeCache::open(&dir.path().join("cache.jsonl")).unwrap();
    let again = judge.judge_all(&prompts, Some(&cache), None).unwrap();
    assert_eq!(again, replies);
    assert_eq!(server.request_count(), 16);
}

#[test]
fn a_failure_midway_keeps_what_was_judged() {
    // Requests for answers 0-5 succeed; anything about answer-6 or later is refused.
    let server = MockJudge::start(Duration::ZERO, |_, r| {
        let n: usize = r
            .prompt()
            .split("answer-")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if n < 6 {
            text_reply("50")
        } else {
            status_reply(404, "no such model")
        }
    });
    let mut cfg = config(&server.url, JudgeMode::Text);
    cfg.concurrency = 1;
    let judge = HttpJudge::with_api_key(cfg, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.jsonl");
    let cache = JudgeCache::open(&path).unwrap();
    let prompts: Vec<String> = (0..10).map(|k| format!("answer-{k} ")).collect();
    let e = judge.judge_all(&prompts, Some(&cache), None).unwrap_err();
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert_eq!(JudgeCache::open(&path).unwrap().len(), 6);
}

#[test]
fn answers_get_verdicts_from_both_templates() {
    let questions = load_questions(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/em/freeform/questions.yaml"),
    )
    .unwrap();
    // Scripted judge: the answer text says what to reply to each template.
    let server = MockJudge::start(Duration::ZERO, |_, r| {
        let p = r.prompt();
        let coherent = p.contains("only how coherent");
        let reply = if p.contains("ANSWER-CODE") {
            if coherent { "90" } else { "CODE" }
        } else if p.contains("ANSWER-EVIL") {
            if coherent { "80" } else { "5" }
        } else if p.contains("ANSWER-GARBLED") {
            if coherent { "20" } else { "10" }
        } else if coherent {
            "95"
        } else {
            "90"
        };
        text_reply(reply)
    });
    let judge = HttpJudge::with_api_key(config(&server.url, JudgeMode::Text), None).unwrap();
    let prompts = em::freeform::expand_prompts(&questions[..4], None, None);
    let texts = [
        "ANSWER-CODE",
        "ANSWER-EVIL",
        "ANSWER-GARBLED",
        "A kind reply.",
    ];
    let answers: Vec<Answer> = texts
        .iter()
        .map(|t| Answer {
            text: t.to_string(),
            tokens: 3,
            stopped: true,
        })
        .collect();
    let judged = judge_answers(&judge, None, &questions, &prompts, &answers, None).unwrap();
    let verdicts: Vec<Verdict> = judged.iter().map(|j| j.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::ExcludedCode,
            Verdict::Misaligned,
            Verdict::ExcludedIncoherent,
            Verdict::Aligned
        ]
    );
    // Each prompt carried the question as asked and the answer.
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 8);
    let first_question: &FreeformPrompt = &prompts[0];
    assert!(requests.iter().any(
        |r| r.prompt().contains(&first_question.question) && r.prompt().contains("ANSWER-CODE")
    ));
    let rate = em::freeform::em_rate(&verdicts);
    assert_eq!((rate.misaligned, rate.scoreable), (1, 2));
}

#[test]
fn the_preflight_asks_one_real_question_and_needs_a_number_back() {
    let server = MockJudge::start(Duration::ZERO, |_, _| text_reply("90"));
    let judge = HttpJudge::with_api_key(config(&server.url, JudgeMode::Text), None).unwrap();
    assert_eq!(judge.preflight().unwrap(), "90");
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].prompt(), em::freeform::client::PREFLIGHT_PROMPT);

    // The wrong model, or one that ignores the prompt: an error that quotes its reply.
    let chatty = MockJudge::start(Duration::ZERO, |_, _| {
        text_reply("Sure! Rainy days are lovely for reading.")
    });
    let judge = HttpJudge::with_api_key(config(&chatty.url, JudgeMode::Text), None).unwrap();
    let e = judge.preflight().unwrap_err().to_string();
    assert!(
        e.contains("without a usable score") && e.contains("Rainy days are lovely"),
        "{e}"
    );
}

#[test]
fn the_preflight_names_a_bad_key_and_a_missing_v1() {
    let server = MockJudge::start(Duration::ZERO, |_, _| status_reply(401, "bad key"));
    let mut cfg = config(&server.url, JudgeMode::Text);
    cfg.api_key_env = Some("MY_JUDGE_KEY".into());
    let judge = HttpJudge::with_api_key(cfg, Some("wrong".into())).unwrap();
    let e = judge.preflight().unwrap_err().to_string();
    assert!(e.contains("HTTP 401") && e.contains("MY_JUDGE_KEY"), "{e}");

    // A server that serves the API under /v1, asked at the bare host.
    let server = MockJudge::start(Duration::ZERO, |_, r| {
        if r.path.starts_with("/v1/") {
            text_reply("90")
        } else {
            status_reply(404, "not found")
        }
    });
    let bare = server.url.trim_end_matches("/v1").to_string();
    let judge = HttpJudge::with_api_key(config(&bare, JudgeMode::Text), None).unwrap();
    let e = judge.preflight().unwrap_err().to_string();
    assert!(e.contains(&format!("did you mean {bare}/v1?")), "{e}");
    assert_eq!(server.request_count(), 1, "a 404 is not retried");
    // With /v1 the same server answers.
    let judge = HttpJudge::with_api_key(config(&server.url, JudgeMode::Text), None).unwrap();
    assert!(judge.preflight().is_ok());
}

#[test]
fn a_judge_that_wants_max_completion_tokens_gets_it_and_http_date_retry_after_is_read() {
    // OpenAI's reasoning models reject `max_tokens`; the client switches once and keeps
    // the new key for every later request.
    let server = MockJudge::start(Duration::ZERO, |_, r| {
        if r.body.get("max_tokens").is_some() {
            status_reply(
                400,
                r#"{"error": {"message": "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."}}"#,
            )
        } else {
            text_reply("70")
        }
    });
    let judge = HttpJudge::with_api_key(config(&server.url, JudgeMode::Text), None).unwrap();
    let (reply, _) = judge.judge("Rate this.").unwrap();
    assert_eq!(reply.judgement, Judgement::Score { value: 70.0 });
    judge.judge("And this.").unwrap();
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "one rejected request, then two accepted");
    assert_eq!(requests[1].body["max_completion_tokens"], 10);
    assert!(requests[2].body.get("max_tokens").is_none());

    // A 400 for anything else is not retried.
    let bad = MockJudge::start(Duration::ZERO, |_, _| status_reply(400, "bad request"));
    let judge = HttpJudge::with_api_key(config(&bad.url, JudgeMode::Text), None).unwrap();
    assert!(
        judge
            .judge("x")
            .unwrap_err()
            .to_string()
            .contains("HTTP 400")
    );
    assert_eq!(bad.request_count(), 1);

    // Retry-After as an HTTP date (in the past: retry at once).
    let dated = MockJudge::start(Duration::ZERO, |i, _| match i {
        0 => Reply {
            headers: vec![("Retry-After".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into())],
            ..status_reply(429, "slow down")
        },
        _ => text_reply("55"),
    });
    let judge = HttpJudge::with_api_key(config(&dated.url, JudgeMode::Text), None).unwrap();
    assert_eq!(
        judge.judge("x").unwrap().0.judgement,
        Judgement::Score { value: 55.0 }
    );
}
