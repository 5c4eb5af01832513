//! The server around the endpoints: routes and their limits, graceful shutdown on SIGTERM, and
//! `seqkd serve` itself ([`run`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use seqkd_runtime::translator::{Precision, Translator};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::api;
use crate::batcher::BatchLimits;
use crate::service::{RequestLimits, Service};

/// The routes, with the body limit, the slow-client timeout and panic containment.
pub fn router(service: Arc<Service>) -> Router {
    let body_limit = service.limits.max_body_bytes();
    let body_timeout = service.limits.body_timeout;
    Router::new()
        .route("/v1/translate", post(api::v1_translate))
        .route("/translate", post(api::libre_translate))
        .route("/languages", get(api::languages))
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .fallback(api::not_found)
        .with_state(service)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(CatchPanicLayer::custom(|_| {
            api::ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while handling this request; the server goes on",
            )
            .into_response()
        }))
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish and decodes what is queued.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(Arc::clone(&service));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `seqkd serve`'s settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub precision: Precision,
    pub threads: usize,
    pub batching: BatchLimits,
    pub limits: RequestLimits,
    /// Language codes; `None`: from the extensions of the model's training files, else "und".
    pub source_lang: Option<String>,
    pub target_lang: Option<String>,
}

/// The model directory's language pair, from `[data] train_src` / `train_tgt` (`train.en` → `en`).
pub fn model_languages(model: &Path) -> (Option<String>, Option<String>) {
    let Ok(text) = std::fs::read_to_string(model.join(seqkd_runtime::format::CONFIG_FILE)) else {
        return (None, None);
    };
    let Ok(table) = toml::from_str::<toml::Table>(&text) else { return (None, None) };
    let ext = |key: &str| {
        let path = table.get("data")?.get(key)?.as_str()?;
        let ext = Path::new(path).extension()?.to_str()?;
        (2..=3)
            .contains(&ext.len())
            .then(|| ext.to_ascii_lowercase())
            .filter(|e| e.chars().all(|c| c.is_ascii_alphabetic()))
    };
    (ext("train_src"), ext("train_tgt"))
}

/// Loads `model`, binds `cfg.addr`, prints `listening on http://ADDR` on stdout, and serves until
/// SIGTERM / Ctrl-C.
pub fn run(model: &Path, cfg: ServeConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let translator = Translator::load(model, None, cfg.precision, cfg.threads)?;
    let (src, tgt) = model_languages(model);
    let langs = (
        cfg.source_lang.or(src).unwrap_or_else(|| "und".into()),
        cfg.target_lang.or(tgt).unwrap_or_else(|| "und".into()),
    );
    let service = Arc::new(Service::new(translator, cfg.batching, cfg.limits, langs));
    // Two I/O threads: decoding has its own thread and pool.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(cfg.addr).await?;
        let addr = listener.local_addr()?;
        println!("listening on http://{addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        tracing::info!(%addr, model = %model.display(), langs = ?service.langs, "serving");
        serve(listener, Arc::clone(&service), termination()).await
    })?;
    drop(service);
    tracing::info!("stopped");
    Ok(())
}

/// One log line per request on stderr (`RUST_LOG` overrides the `info` default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
