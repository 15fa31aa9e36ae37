//! The shadowsync executor: stateless workers that consume the execute queue,
//! claim tasks from the task service and apply the approved DDL to shadow tables, safely and
//! resumably.
//!
//! # Entry point
//! [`run`]`(deps, shutdown)` consumes `<prefix>shadowsync.execute` until `shutdown` completes,
//! then drains (see [`worker`]). [`ExecutorDeps`] carries the queue, the task service
//! ([`backend::ExecutionBackend`]; [`grpc_backend::GrpcExecutionBackend`] in production), the
//! clock, the executor's id and the `executor.prefetch`, `executor.concurrency` and
//! `executor.table_parallelism` settings.
//!
//! ```no_run
//! # async fn example(
//! #     queue: std::sync::Arc<dyn shadowsync_common::queue::MessageQueue>,
//! #     channel: shadowsync_common::grpc::ServiceChannel,
//! # ) -> shadowsync_common::queue::QueueResult<()> {
//! use std::sync::Arc;
//! use shadowsync_executor::{ExecutorDeps, grpc_backend::GrpcExecutionBackend, run};
//! let deps = ExecutorDeps {
//!     queue,
//!     backend: Arc::new(GrpcExecutionBackend::new(channel)),
//!     clock: Arc::new(shadowsync_common::clock::SystemClock),
//!     executor_id: "executor-1@host".into(),
//!     prefetch: 1,
//!     concurrency: 1,
//!     table_parallelism: 1,
//!     shutdown_grace: std::time::Duration::from_secs(30),
//! };
//! run(deps, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! # Layout
//! - [`worker`]: the consumer loop (acks, dead-letters, concurrency, shutdown);
//! - [`engine`]: runs one claimed plan (drift, resume, statements, reports, logs);
//! - [`guard`] and [`tokens`]: the safety guard and its tokenizer;
//! - [`lease`]: heartbeats and the lease/abort checks made between statements;
//! - [`backend`]: the task service as a trait; [`grpc_backend`]: its gRPC client.

pub mod backend;
pub mod engine;
pub mod grpc_backend;
pub mod guard;
pub mod lease;
pub mod tokens;
pub mod worker;

#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

use shadowsync_common::clock::Clock;
use shadowsync_common::queue::{MessageQueue, QueueResult};

use crate::backend::ExecutionBackend;

/// What an executor runs on.
#[derive(Clone)]
pub struct ExecutorDeps {
    pub queue: Arc<dyn MessageQueue>,
    pub backend: Arc<dyn ExecutionBackend>,
    pub clock: Arc<dyn Clock>,
    /// Stable id of this process (e.g. `executor-7f9c@host`), shown in the task's timeline.
    pub executor_id: String,
    /// Unsettled deliveries at once (`executor.prefetch`, default 1 so priority order holds).
    pub prefetch: u16,
    /// Tasks run at once (`executor.concurrency`).
    pub concurrency: usize,
    /// Lanes of independent tables one task runs at once, each on its own connection to the
    /// target (`executor.table_parallelism`, default 1: the whole plan in order on one).
    pub table_parallelism: usize,
    /// After shutdown is signalled, running tasks may finish for this long; then they stop
    /// between statements and are handed back.
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for ExecutorDeps {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExecutorDeps")
            .field("executor_id", &self.executor_id)
            .field("prefetch", &self.prefetch)
            .field("concurrency", &self.concurrency)
            .field("table_parallelism", &self.table_parallelism)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish_non_exhaustive()
    }
}

/// Runs the executor until `shutdown` completes (see the crate documentation).
///
/// Fails only when the execute queue cannot be subscribed to at start.
pub async fn run(deps: ExecutorDeps, shutdown: impl Future<Output = ()>) -> QueueResult<()> {
    worker::run_worker(deps, shutdown).await
}
