//! System tests: all four services against the real PostgreSQL, RabbitMQ and MariaDB servers,
//! driven through the public gRPC API.
//!
//! - [`node`]: one server (`shadowsync_server::run`) on its own thread and tokio runtime, so a
//!   test can kill it (drop the runtime) and restart it on the same port;
//! - [`cluster`]: the four services as separate nodes on PostgreSQL + RabbitMQ, each test with
//!   its own store and queue prefix; [`cluster::Embedded`]: `serve all` on SQLite and the
//!   in-process queue;
//! - [`api`]: clients per user, and the journey's steps with polling under timeouts;
//! - [`journey`]: the user's journey as scenarios over any deployment's endpoints;
//! - [`target`]: the MariaDB database being synced, and structure comparisons;
//! - [`chart`]: the Helm chart rendered with chosen values, as objects to assert on, and its
//!   containers started as local processes ([`chart::Cluster`]);
//! - [`observe`]: an in-process OTLP receiver, captured JSON logs, the Prometheus text format.
//!
//! The servers are the shared ones `deploy/dev/services.sh` starts, overridable with
//! `SHADOWSYNC_TEST_PG_URL`, `SHADOWSYNC_TEST_MYSQL_URL` and `SHADOWSYNC_TEST_AMQP_URL`; each test
//! makes its own databases and queue prefix and removes them. `SHADOWSYNC_SYSTEST_LOG=info`
//! shows the services' logs (see [`init_logging`]).
//!
//! Reuse, e.g. for a benchmark:
//!
//! ```text
//! let cluster = Cluster::start().await;            // or Embedded::start()
//! let mut team = api::Team::new(&cluster.endpoints()).await;
//! let db = target::MariaDb::create("bench").await;
//! let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
//! team.alice.wait_status(id, TaskStatus::ExecutionSucceeded).await;
//! ```
//!
//! Test code: set-up failures panic (with what failed), which is what a test should do.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod api;
pub mod chart;
pub mod cluster;
pub mod journey;
pub mod node;
pub mod observe;
pub mod target;

/// Sends the services' logs to stderr when `SHADOWSYNC_SYSTEST_LOG` holds a filter (e.g.
/// `info,shadowsync_common=debug`): the way to see inside a failing system test. Off by
/// default, so passing runs stay quiet.
pub fn init_logging() {
    if let Ok(filter) = std::env::var("SHADOWSYNC_SYSTEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}
