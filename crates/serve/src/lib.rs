//! `seqkd serve`: a student (or any seqkd model directory) as an HTTP translation service, on the
//! native runtime (no libtorch), with dynamic batching across concurrent requests.
//!
//! ```text
//! request ─► api (limits, JSON/form, encode) ─► batcher queue ─► decoding thread ─► Translator
//!    ▲                                                                  │ (batch of many requests)
//!    └──────────── hypotheses of this request, in its order ◄───────────┘
//! ```
//!
//! [`api`] holds the endpoints, [`batcher`] the queue and the decoding thread, [`metrics`] the
//! Prometheus counters. [`run`] is the command: it binds, serves until SIGTERM or Ctrl-C, lets
//! in-flight requests finish, and returns.

pub mod api;
pub mod batcher;
pub mod bench;
pub mod client;
pub mod metrics;
pub mod server;
pub mod service;

pub use batcher::{BatchLimits, Batcher, Options};
pub use metrics::Metrics;
pub use server::{init_logging, model_languages, run, serve, termination, ServeConfig};
pub use service::{RequestLimits, Service};
