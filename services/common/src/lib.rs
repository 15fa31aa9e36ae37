//! What every shadowsync service shares.
//!
//! - [`clock`]: injected time and the stored time format;
//! - [`db`]: the metadata store (PostgreSQL or SQLite) with per-service migrations;
//! - [`config`]: layered configuration, loaded and validated once at start-up;
//! - [`telemetry`]: tracing and OpenTelemetry set-up with a flushing guard;
//! - [`auth`]: bearer-token identity, service identities, the server interceptor;
//! - [`error`]: the one mapping from domain errors to `tonic::Status`;
//! - [`grpc`]: TLS, reflection, serving with graceful shutdown, authenticated channels;
//! - [`grpc_body`]: an undecodable request body answered with `INVALID_ARGUMENT`;
//! - [`outbox`]: messages written in the state change's transaction, relayed with confirms;
//! - [`plan_digest`]: the hash that binds an approval to the exact plan that runs;
//! - [`queue`]: the execute queue and event exchange, over RabbitMQ or in-process;
//! - [`secret`]: a wrapper that keeps secrets out of logs;
//! - [`limits`]: bounds on requests' free-text fields, INVALID_ARGUMENT past them;
//! - [`log_line`]: one event, one escaped line, whatever its fields hold;
//! - [`logged`]: caller-supplied values escaped and truncated for log lines;
//! - [`cleartext_gate`]: a relay that keeps MySQL passwords from going out in clear.

pub mod auth;
pub mod cleartext_gate;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod grpc_body;
pub mod limits;
pub mod log_line;
pub mod logged;
pub mod outbox;
pub mod plan_digest;
pub mod queue;
pub mod secret;
pub mod target;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod text;
