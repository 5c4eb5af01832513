//! `seqkd serve` as users run it: the real binary on a free loopback port, spoken to over HTTP.
//! The model is the tiny imported Marian teacher `shared-swish` (crates/nmt/tests/data/marian).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use seqkd_serve::client;
use serde_json::{json, Value};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/nmt/tests/data/marian/shared-swish")
}

/// The fixture imported once per test into `dir/model`.
fn model(dir: &Path) -> PathBuf {
    let out = dir.join("model");
    let status = Command::new(env!("CARGO_BIN_EXE_seqkd"))
        .args(["import", "--format", "marian-hf", "--from"])
        .arg(fixture())
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// Held-out Multi30k sources of the fixture's reference.json.
fn sources(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(fixture().join("reference.json")).unwrap();
    let r: Value = serde_json::from_str(&text).unwrap();
    r["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .take(n)
        .map(|s| s["source"].as_str().unwrap().to_string())
        .collect()
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(model: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seqkd"))
            .args(["serve", "--port", "0", "--threads", "1", "--source-lang", "en", "--target-lang", "de"])
            .arg("--model")
            .arg(model)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Self { child, addr }
    }

    fn post(&self, path: &str, body: Value) -> client::Response {
        client::post_json(self.addr, path, &body).unwrap()
    }

    fn raw(&self, content_type: &str, body: &[u8]) -> client::Response {
        client::request(self.addr, "POST", "/v1/translate", content_type, body).unwrap()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `seqkd translate --engine native` on `lines` with `args`: its stdout lines.
fn translate(model: &Path, lines: &[String], args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seqkd"))
        .args(["translate", "--engine", "native", "--threads", "1", "--model"])
        .arg(model)
        .arg("--input")
        .arg(&input)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect()
}

#[test]
fn served_translations_equal_seqkd_translate_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let lines = sources(48);
    let server = Server::start(&model, &["--max-wait-ms", "20"]);

    // 8 clients at once, one sentence per request: batched together, each answer its own. Odd
    // clients ask for no scores (greedy search then skips the softmax): same text, no "score".
    let greedy = translate(&model, &lines, &["--beam", "1"]);
    let served: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|c| {
                let (lines, server) = (&lines, &server);
                s.spawn(move || {
                    (c..lines.len())
                        .step_by(8)
                        .map(|i| {
                            let scores = c % 2 == 0;
                            let body = json!({ "text": lines[i], "beam": 1, "scores": scores });
                            let r = server.post("/v1/translate", body);
                            assert_eq!(r.status, 200, "{}", r.text());
                            let t = &r.json()["translations"][0];
                            assert_eq!(t.get("score").is_some(), scores, "{t}");
                            (i, t["text"].as_str().unwrap().to_string())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(served.len(), lines.len());
    for (i, text) in served {
        assert_eq!(text, greedy[i], "sentence {i}");
    }

    // One request of many sentences, beam 5 with 2-best lists, against `--nbest 2`.
    let nbest = translate(&model, &lines, &["--beam", "5", "--nbest", "2"]);
    let r = server.post("/v1/translate", json!({ "text": lines, "beam": 5, "nbest": 2 }));
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Vec<String> = r.json()["translations"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            let list = t["nbest"].as_array().unwrap().clone();
            assert_eq!(t["text"], list[0]["text"]);
            list.into_iter().map(move |h| {
                format!("{i} ||| {} ||| {:.4}", h["text"].as_str().unwrap(), h["score"].as_f64().unwrap())
            })
        })
        .collect();
    assert_eq!(got, nbest);

    // The model's own beam when a request names none.
    let default = translate(&model, &lines[..4], &[]);
    let r = server.post("/v1/translate", json!({ "text": &lines[..4] }));
    let texts: Vec<_> =
        r.json()["translations"].as_array().unwrap().iter().map(|t| t["text"].clone()).collect();
    assert_eq!(texts, default.iter().map(|t| json!(t)).collect::<Vec<_>>());

    let metrics = client::get(server.addr, "/metrics").unwrap();
    let text = metrics.text();
    assert_eq!(metrics.status, 200);
    for name in [
        "seqkd_requests_total{endpoint=\"v1/translate\",status=\"200\"} 50",
        "seqkd_sentences_total 100",
        "seqkd_batch_sentences_bucket",
        "seqkd_request_duration_seconds_bucket",
        "seqkd_queue_sentences 0",
    ] {
        assert!(text.contains(name), "{name} not in\n{text}");
    }
    // Concurrent requests were decoded together: fewer batches than requests.
    let batches: f64 =
        text.lines().find_map(|l| l.strip_prefix("seqkd_batch_sentences_count ")).unwrap().parse().unwrap();
    assert!(batches < 50.0, "{batches} batches for 50 requests");
    let health = client::get(server.addr, "/health").unwrap();
    assert_eq!((health.status, health.json()["status"].clone()), (200, json!("ok")));
}

#[test]
fn libretranslate_clients_work_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let lines = sources(3);
    let expect = translate(&model, &lines, &[]);
    let server = Server::start(&model, &[]);

    let r =
        server.post("/translate", json!({ "q": lines[0], "source": "en", "target": "de", "api_key": "" }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({ "translatedText": expect[0] }));

    let r = server.post("/translate", json!({ "q": lines, "source": "en", "target": "de" }));
    assert_eq!(r.json(), json!({ "translatedText": expect }));

    let r = server
        .post("/translate", json!({ "q": lines[1], "source": "auto", "target": "de", "alternatives": 2 }));
    let v = r.json();
    assert_eq!(v["translatedText"], json!(expect[1]));
    assert_eq!(v["detectedLanguage"], json!({ "confidence": 100.0, "language": "en" }));
    assert_eq!(v["alternatives"].as_array().unwrap().len(), 2);
    let r =
        server.post("/translate", json!({ "q": lines, "source": "en", "target": "de", "alternatives": 1 }));
    let v = r.json();
    assert_eq!(v["alternatives"].as_array().unwrap().len(), 3);
    assert!(v["alternatives"][0].is_array(), "{v}");

    // A form body, as LibreTranslate's own web page and curl -d send.
    let form = format!("q={}&source=en&target=de", lines[2].replace(' ', "+"));
    let r = client::request(
        server.addr,
        "POST",
        "/translate",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.json(), json!({ "translatedText": expect[2] }));

    let r = client::get(server.addr, "/languages").unwrap();
    assert_eq!(r.json(), json!([{ "code": "en", "name": "English", "targets": ["de"] }]));

    let r = server.post("/translate", json!({ "q": "Hallo", "source": "fr", "target": "de" }));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("source \"fr\" is not supported"), "{}", r.text());
    let r =
        server.post("/translate", json!({ "q": "Hello", "source": "en", "target": "de", "format": "html" }));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("html"), "{}", r.text());
}

fn error(r: &client::Response) -> String {
    r.json()["error"].as_str().unwrap_or_else(|| panic!("no error message: {}", r.text())).to_string()
}

#[test]
fn bad_input_gets_a_4xx_that_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let server = Server::start(
        &model,
        &[
            "--max-request-sentences",
            "4",
            "--max-sentence-chars",
            "50",
            "--max-beam",
            "5",
            "--body-timeout-s",
            "1",
        ],
    );
    let cases: Vec<(client::Response, u16, &str)> = vec![
        (server.raw("application/json", b"{\"text\": [\"a\""), 400, "not valid JSON"),
        (server.raw("application/json", b"{\"text\": [\"caf\xe9\"]}"), 400, "not valid JSON"),
        (server.raw("text/plain", b"{\"text\": \"a\"}"), 415, "Content-Type: application/json"),
        (server.post("/v1/translate", json!([1, 2])), 400, "not a JSON object"),
        (server.post("/v1/translate", json!({ "text": 5 })), 400, "\"text\" is a number"),
        (server.post("/v1/translate", json!({ "text": ["ok", 7] })), 400, "\"text\"[1] is a number"),
        (server.post("/v1/translate", json!({ "txt": "a" })), 400, "unknown field \"txt\""),
        (server.post("/v1/translate", json!({})), 400, "missing \"text\""),
        (server.post("/v1/translate", json!({ "text": [] })), 400, "no sentences"),
        (server.post("/v1/translate", json!({ "text": vec!["a"; 5] })), 413, "the limit is 4"),
        (server.post("/v1/translate", json!({ "text": "x".repeat(51) })), 413, "51 characters"),
        (server.post("/v1/translate", json!({ "text": "a", "beam": 9 })), 400, "beam 9 is outside 1..=5"),
        (server.post("/v1/translate", json!({ "text": "a", "beam": 2, "nbest": 3 })), 400, "nbest 3"),
        (server.post("/v1/translate", json!({ "text": "a", "beam": -1 })), 400, "non-negative integer"),
        (server.post("/v1/translate", json!({ "text": "a", "scores": 1 })), 400, "not true or false"),
        (server.post("/translate", json!({ "q": "a", "source": "en" })), 400, "missing \"target\""),
        (client::get(server.addr, "/nope").unwrap(), 404, "no such endpoint"),
    ];
    for (r, status, message) in cases {
        assert_eq!(r.status, status, "{}", r.text());
        let e = error(&r);
        assert!(e.contains(message), "{status}: {e:?} should contain {message:?}");
    }
    // A body far past the limit is refused before it is read.
    let huge = json!({ "text": "a".repeat(4 * (50 * 6 + 16) + 8192) }).to_string();
    let r = server.raw("application/json", huge.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());

    // A client that stops sending its body.
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    let head = "POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"text\":";
    slow.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    let r = client::receive(slow).unwrap();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(error(&r).contains("did not arrive in time"), "{}", r.text());
    assert!(start.elapsed() < Duration::from_secs(5));

    // The server is still there, and says how it went.
    let r = server.post("/v1/translate", json!({ "text": "A dog runs." }));
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = client::get(server.addr, "/metrics").unwrap().text();
    assert!(
        metrics.contains("seqkd_requests_total{endpoint=\"v1/translate\",status=\"413\"} 3"),
        "{metrics}"
    );
}

#[test]
fn overload_is_a_503_with_retry_after_and_cancelled_requests_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    // The oldest request waits 1.5 s for company; the queue holds one sentence.
    let server = Server::start(
        &model,
        &["--max-wait-ms", "1500", "--max-queue-sentences", "1", "--max-request-sentences", "1"],
    );
    let body = json!({ "text": "A man rides a bike." }).to_string();
    let waiting =
        client::send(server.addr, "POST", "/v1/translate", "application/json", body.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = server.post("/v1/translate", json!({ "text": "Two dogs." }));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(error(&r).contains("overloaded"), "{}", r.text());
    // The first caller hangs up before its batch is decoded: its work is dropped.
    drop(waiting);
    std::thread::sleep(Duration::from_millis(2000));
    let metrics = client::get(server.addr, "/metrics").unwrap().text();
    assert!(metrics.contains("seqkd_cancelled_sentences_total 1"), "{metrics}");
    assert!(metrics.contains("seqkd_batch_sentences_count 0"), "{metrics}");
    let r = server.post("/v1/translate", json!({ "text": "Two dogs." }));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let mut server = Server::start(&model, &["--max-wait-ms", "1000"]);
    let body = json!({ "text": ["A man rides a bike.", "Two dogs play."] }).to_string();
    let in_flight =
        client::send(server.addr, "POST", "/v1/translate", "application/json", body.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let r = client::receive(in_flight).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["translations"].as_array().unwrap().len(), 2);
    assert!(std::net::TcpStream::connect(server.addr).is_err(), "still accepting after SIGTERM");
}

#[test]
fn bench_serve_reports_every_round_without_errors_or_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let input = dir.path().join("in.txt");
    std::fs::write(&input, sources(40).join("\n") + "\n").unwrap();
    for extra in [&[][..], &["--connection-per-request"][..]] {
        let report = dir.path().join("report.json");
        let out = Command::new(env!("CARGO_BIN_EXE_seqkd"))
            .args(["bench-serve", "--clients", "8", "--threads", "1", "--rounds", "2", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(&report)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(r["keep_alive"], json!(extra.is_empty()));
        assert_eq!(r["rounds"].as_array().unwrap().len(), 2);
        assert_eq!(
            (r["errors_all_rounds"].as_u64(), r["mismatches_all_rounds"].as_u64()),
            (Some(0), Some(0))
        );
        for phase in ["serve_dynamic_batching", "serve_no_batching"] {
            assert_eq!(r[phase]["sentences"], json!(40), "{phase}");
            assert!(r[phase]["p99_ms"].as_f64().unwrap() >= r[phase]["p50_ms"].as_f64().unwrap());
        }
        // Without batching every batch is one sentence; with it, concurrent clients share batches.
        assert_eq!(r["serve_no_batching"]["mean_batch_sentences"], json!(1.0));
        assert!(r["serve_dynamic_batching"]["mean_batch_sentences"].as_f64().unwrap() > 1.0);
    }
}
