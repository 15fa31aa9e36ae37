//! The task service's settings: analysis limits, retention, the runner lease and the executors'
//! lease.

use std::time::Duration;

/// Analysis settings.
#[derive(Debug, Clone, Copy)]
pub struct TaskConfig {
    /// Most tables one analysis may cover (DESIGN: default 20,000).
    pub max_tables: u32,
    /// How long an unsubmitted analysis is kept (default 7 days).
    pub analysis_retention: Duration,
    /// How long a runner's lease lasts without renewal; a runner renews it at a third of this.
    pub runner_lease: Duration,
    /// How often the background loop recovers lost runners and expires analyses.
    pub sweep_interval: Duration,
    /// How often the task sweepers run (submitter retries, leases, expirations).
    pub task_sweep_interval: Duration,
    /// How long an executor's lease lasts without a heartbeat; executors are told to heartbeat
    /// at a third of it.
    pub execution_lease: Duration,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            max_tables: 20_000,
            analysis_retention: Duration::from_secs(7 * 24 * 3600),
            runner_lease: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(10),
            task_sweep_interval: Duration::from_secs(1),
            execution_lease: Duration::from_secs(30),
        }
    }
}
