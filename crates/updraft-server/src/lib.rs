//! updraft's update server: the seed's check/info/download API, the signed
//! store as static files, release rules (channels, staged rollout, forced
//! updates, minimum supported version), an admin API, statistics and metrics.
//!
//! The server only decides *which signed release* a client is offered;
//! clients verify every byte against the TUF metadata it serves.
//!
//! ```no_run
//! # async fn demo() -> Result<(), updraft_server::Error> {
//! let config = updraft_server::ServerConfig::new("store".into());
//! let server = updraft_server::Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod admin;
mod app;
mod autohalt;
mod connections;
mod dashboard;
mod error;
mod files;
mod logging;
mod metrics;
mod openapi;
mod postgres;
mod rules;
mod server;
mod signing;
mod stats;
mod tls;
mod view;

pub use error::{Error, Result};
pub use logging::EscapedFields;
pub use postgres::{POSTGRES_SCHEMA_VERSION, PostgresOptions, PostgresStorage, redact_url};
pub use server::{DatabaseUrl, Server, ServerConfig, shutdown_signal};
pub use stats::{
    AuditEntry, Batch, Count, CounterKey, EventKind, MAX_BUFFERED_KEYS, SQLITE_SCHEMA_VERSION,
    SqliteStorage, Storage, TimelineKey, TimelinePoint,
};
pub use view::{Override, ReleaseKey};
