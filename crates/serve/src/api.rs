//! The HTTP endpoints: seqkd's own `POST /v1/translate`, the LibreTranslate-compatible
//! `POST /translate` and `GET /languages`, `GET /health`, `GET /metrics`.
//!
//! Every refusal is a 4xx (5xx when the server is at fault or full) with `{"error": "..."}` saying
//! what to change: the same shape LibreTranslate clients already handle.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::{json, Map, Value};

use seqkd_runtime::format::Hypothesis;

use crate::batcher::{Options, Refused};
use crate::service::Service;

/// A refusal: status and message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Whether a body rejection is the slow-client timeout (tower-http's `TimeoutError` inside).
fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "the request body did not arrive in time (--body-timeout-s): send it whole, then wait",
    )
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if body_timed_out(&r) {
            return timeout();
        }
        let message = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "send the body as JSON with Content-Type: application/json".to_string()
            }
            JsonRejection::JsonSyntaxError(_) => {
                format!("the body is not valid JSON (UTF-8): {}", r.body_text())
            }
            _ => r.body_text(),
        };
        Self::new(r.status(), message)
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        if body_timed_out(&r) {
            return timeout();
        }
        Self::new(r.status(), r.body_text())
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        let status = match r {
            Refused::Overloaded { .. } | Refused::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Refused::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, r.to_string())
    }
}

/// `field` as a list of sentences: a string is one sentence, a list of strings many.
fn sentences(body: &Map<String, Value>, field: &str) -> Result<(Vec<String>, bool), ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(ApiError::bad(format!("missing \"{field}\": the text to translate"))),
        Some(Value::String(s)) => Ok((vec![s.clone()], false)),
        Some(Value::Array(items)) => {
            let texts = items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ApiError::bad(format!("\"{field}\"[{i}] is {}, not a string", kind(other)))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((texts, true))
        }
        Some(other) => {
            Err(ApiError::bad(format!("\"{field}\" is {}: give a string or a list of strings", kind(other))))
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An optional non-negative integer field (a JSON number, or a form's digit string).
fn count(body: &Map<String, Value>, field: &str) -> Result<Option<usize>, ApiError> {
    let bad = || ApiError::bad(format!("\"{field}\" must be a non-negative integer"));
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(|n| Some(n as usize)).ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn boolean(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::bad(format!("\"{field}\" is {}, not true or false", kind(other)))),
    }
}

fn string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::bad(format!("\"{field}\" is {}, not a string", kind(other)))),
    }
}

fn object(v: Value) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad(format!("the body is {}, not a JSON object", kind(&other)))),
    }
}

/// Translations of one request, with what the log line reports.
struct Translated {
    hypotheses: Vec<Vec<Hypothesis>>,
}

impl Service {
    /// Checks the request against the server's limits, encodes it, queues it and waits.
    async fn translate(
        &self,
        endpoint: &'static str,
        texts: &[String],
        options: Options,
    ) -> Result<Translated, ApiError> {
        let limits = &self.limits;
        if texts.is_empty() {
            return Err(ApiError::bad("no sentences: give at least one"));
        }
        if texts.len() > limits.max_request_sentences {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} sentences in one request; the limit is {} (--max-request-sentences): split it",
                    texts.len(),
                    limits.max_request_sentences
                ),
            ));
        }
        if let Some((i, n)) =
            texts.iter().map(|t| t.chars().count()).enumerate().find(|&(_, n)| n > limits.max_sentence_chars)
        {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "sentence {i} has {n} characters; the limit is {} (--max-sentence-chars)",
                    limits.max_sentence_chars
                ),
            ));
        }
        if options.beam == 0 || options.beam > limits.max_beam {
            return Err(ApiError::bad(format!(
                "beam {} is outside 1..={} (--max-beam)",
                options.beam, limits.max_beam
            )));
        }
        if options.nbest == 0 || options.nbest > options.beam {
            return Err(ApiError::bad(format!(
                "nbest {} must be between 1 and the beam size {}",
                options.nbest, options.beam
            )));
        }
        let ids = texts
            .iter()
            .map(|t| self.vocab.encode_src(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad(format!("cannot encode the text: {e}")))?;
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let start = Instant::now();
        let rx = self.batcher.submit(ids, options)?;
        let reply = rx.await.map_err(|_| Refused::Failed("the decoding thread stopped".into()))??;
        self.metrics.sentences.inc_by(texts.len() as u64);
        self.metrics.source_tokens.inc_by(tokens as u64);
        self.metrics.request_seconds.observe(start.elapsed().as_secs_f64());
        tracing::info!(
            endpoint,
            sentences = texts.len(),
            tokens,
            beam = options.beam,
            batch = reply.batch_sentences,
            queue_ms = reply.queue.as_secs_f64() * 1e3,
            decode_ms = reply.decode.as_secs_f64() * 1e3,
            "translated"
        );
        Ok(Translated { hypotheses: reply.hypotheses })
    }

    fn text(&self, h: &Hypothesis) -> String {
        self.vocab.decode(&h.tokens)
    }

    fn counted<T: IntoResponse>(&self, endpoint: &str, r: Result<T, ApiError>) -> Response {
        let response = match r {
            Ok(ok) => ok.into_response(),
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::warn!(endpoint, status = e.status.as_u16(), "{}", e.message);
                } else {
                    tracing::info!(endpoint, status = e.status.as_u16(), "refused: {}", e.message);
                }
                e.into_response()
            }
        };
        self.metrics.request(endpoint, response.status().as_u16());
        response
    }
}

/// `POST /v1/translate` `{"text": "..." | [...], "beam": K, "nbest": N, "scores": bool}` →
/// `{"translations": [{"text", "score"[, "nbest": [{"text", "score"}, ...]]}, ...]}`; `score` is
/// the length-normalised log-probability `seqkd translate --nbest` prints. With `"scores": false`
/// (default true) there is no `score`, and greedy search skips the softmax over the vocabulary.
pub async fn v1_translate(
    State(s): State<Arc<Service>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let r = async {
        let body = object(body?.0)?;
        let fields = ["text", "beam", "nbest", "scores"];
        if let Some(unknown) = body.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(ApiError::bad(format!(
                "unknown field \"{unknown}\" (fields: {})",
                fields.join(", ")
            )));
        }
        let (texts, _) = sentences(&body, "text")?;
        let nbest = count(&body, "nbest")?.unwrap_or(1);
        let beam = count(&body, "beam")?.unwrap_or(s.default_beam.max(nbest));
        let scores = boolean(&body, "scores")?.unwrap_or(true);
        // Beam search scores anyway: such requests share batches whatever they asked.
        let options = Options { beam, nbest, scores: scores || beam > 1 };
        let out = s.translate("v1/translate", &texts, options).await?;
        let item = |h: &Hypothesis| {
            let mut item = json!({ "text": s.text(h) });
            if scores {
                item["score"] = json!(h.normalized_score);
            }
            item
        };
        let translations: Vec<Value> = out
            .hypotheses
            .iter()
            .map(|hyps| {
                let mut best = item(&hyps[0]);
                if nbest > 1 {
                    best["nbest"] = hyps.iter().map(item).collect();
                }
                best
            })
            .collect();
        Ok(Json(json!({ "translations": translations })))
    }
    .await;
    s.counted("v1/translate", r)
}

/// A LibreTranslate body: JSON, or a form (`application/x-www-form-urlencoded`), as
/// LibreTranslate itself accepts.
async fn libre_body(req: Request) -> Result<Map<String, Value>, ApiError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(req, &()).await?;
        let mut map = Map::new();
        for (k, v) in pairs {
            match map.get_mut(&k) {
                // A repeated `q` is a list.
                Some(Value::Array(list)) => list.push(Value::String(v)),
                Some(first) => *first = Value::Array(vec![first.take(), Value::String(v)]),
                None => {
                    map.insert(k, Value::String(v));
                }
            }
        }
        Ok(map)
    } else {
        let Json(v) = Json::<Value>::from_request(req, &()).await?;
        object(v)
    }
}

/// `POST /translate`, as LibreTranslate: `q` (a string or a list), `source` (the model's source
/// language or `auto`), `target`, `format` (`text`), `alternatives` (n-best beyond the first),
/// `api_key` (ignored) → `{"translatedText": ...[, "alternatives": ...][, "detectedLanguage": ...]}`,
/// each a string for a string `q` and a list for a list.
pub async fn libre_translate(State(s): State<Arc<Service>>, req: Request) -> Response {
    let r = async {
        let body = libre_body(req).await?;
        let (texts, many) = sentences(&body, "q")?;
        let source = string(&body, "source")?.unwrap_or("auto");
        let target = string(&body, "target")?.ok_or_else(|| {
            ApiError::bad(format!("missing \"target\" (this server translates into {:?})", s.langs.1))
        })?;
        if source != "auto" && source != s.langs.0 {
            return Err(ApiError::bad(format!(
                "source {source:?} is not supported: this model translates {:?} to {:?}",
                s.langs.0, s.langs.1
            )));
        }
        if target != s.langs.1 {
            return Err(ApiError::bad(format!(
                "target {target:?} is not supported: this model translates {:?} to {:?}",
                s.langs.0, s.langs.1
            )));
        }
        match string(&body, "format")?.unwrap_or("text") {
            "text" => {}
            "html" => {
                return Err(ApiError::bad("format \"html\" is not supported; send plain text (\"text\")"))
            }
            other => return Err(ApiError::bad(format!("format {other:?}: use \"text\""))),
        }
        let alternatives = count(&body, "alternatives")?.unwrap_or(0);
        let nbest = alternatives + 1;
        let beam = s.default_beam.max(nbest);
        // LibreTranslate returns no scores: greedy search need not compute them.
        let out = s.translate("translate", &texts, Options { beam, nbest, scores: beam > 1 }).await?;
        let best: Vec<Value> = out.hypotheses.iter().map(|h| Value::String(s.text(&h[0]))).collect();
        let alts: Vec<Value> = out
            .hypotheses
            .iter()
            .map(|h| h[1..].iter().map(|h| Value::String(s.text(h))).collect())
            .collect();
        let one = |list: Vec<Value>| {
            if many {
                Value::Array(list)
            } else {
                list.into_iter().next().unwrap_or_default()
            }
        };
        let mut response = Map::new();
        if source == "auto" {
            // One language pair: "detection" is the model's source language.
            let detected = json!({ "confidence": 100.0, "language": s.langs.0 });
            response.insert("detectedLanguage".into(), one(vec![detected; texts.len()]));
        }
        response.insert("translatedText".into(), one(best));
        if alternatives > 0 {
            response.insert("alternatives".into(), one(alts));
        }
        Ok(Json(Value::Object(response)))
    }
    .await;
    s.counted("translate", r)
}

/// `GET /languages`, as LibreTranslate: the model's source language and its one target.
pub async fn languages(State(s): State<Arc<Service>>) -> Response {
    let (src, tgt) = &s.langs;
    let body = json!([{ "code": src, "name": language_name(src), "targets": [tgt] }]);
    s.counted("languages", Ok::<_, ApiError>(Json(body)))
}

pub async fn health(State(s): State<Arc<Service>>) -> Response {
    let body = json!({ "status": "ok", "queued_sentences": s.batcher.queued() });
    s.counted("health", Ok::<_, ApiError>(Json(body)))
}

pub async fn metrics(State(s): State<Arc<Service>>) -> Response {
    let text = s.metrics.render();
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    s.counted("metrics", Ok::<_, ApiError>(([(header::CONTENT_TYPE, content_type)], text)))
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint: POST /v1/translate, POST /translate, GET /languages, GET /health, GET /metrics",
    )
}

/// English names of the languages OPUS-MT serves most; the code itself otherwise.
fn language_name(code: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("ar", "Arabic"),
        ("cs", "Czech"),
        ("de", "German"),
        ("en", "English"),
        ("es", "Spanish"),
        ("fi", "Finnish"),
        ("fr", "French"),
        ("it", "Italian"),
        ("ja", "Japanese"),
        ("nl", "Dutch"),
        ("pl", "Polish"),
        ("pt", "Portuguese"),
        ("ro", "Romanian"),
        ("ru", "Russian"),
        ("sv", "Swedish"),
        ("tr", "Turkish"),
        ("uk", "Ukrainian"),
        ("zh", "Chinese"),
    ];
    NAMES.iter().find(|(c, _)| *c == code).map_or_else(|| code.to_string(), |(_, n)| n.to_string())
}
