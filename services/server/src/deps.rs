//! What a role needs from the outside world: its stores and the queue, opened without
//! connecting, so the process starts (and reports NOT_SERVING) while they are still down.

use std::sync::Arc;

use shadowsync_common::config::Config;
use shadowsync_common::db::Database;
use shadowsync_common::queue::{self, MessageQueue};

use crate::readiness::{Probe, Readiness};
use crate::{Role, ServerError};

/// The opened dependencies of one process.
pub struct Dependencies {
    pub queue: Option<Arc<dyn MessageQueue>>,
    pub task_db: Option<Database>,
    pub approval_db: Option<Database>,
}

impl Dependencies {
    /// Opens what `role` needs: each stateful service's store (its own schema on the configured
    /// PostgreSQL, or its own SQLite file under the data directory) and the queue (RabbitMQ, or
    /// the in-process queue under the data directory).
    ///
    /// Fails on a malformed URL or when a local file cannot be created.
    pub async fn open(role: Role, config: &Config) -> Result<Self, ServerError> {
        let store = |service: &'static str| async move {
            match &config.database_url {
                Some(url) => Database::connect(url.expose(), service).await,
                None => Database::embedded(&config.data_dir, service).await,
            }
            .map_err(|e| ServerError::Dependency(e.to_string()))
        };
        let needs_queue = !matches!(role, Role::Analysis);
        let queue = if needs_queue {
            Some(
                queue::open(&config.queue, &config.data_dir)
                    .await
                    .map_err(|e| ServerError::Dependency(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Self {
            queue,
            task_db: if role.includes(Role::Task) {
                Some(store("task").await?)
            } else {
                None
            },
            approval_db: if role.includes(Role::Approval) {
                Some(store("approval").await?)
            } else {
                None
            },
        })
    }

    /// Registers a probe for each dependency `role` needs to answer its API (and the data
    /// directory when anything lives there).
    ///
    /// The task service's API does not need the broker: what it publishes goes through its
    /// outbox and its event consumer resubscribes by itself, so a broker outage must not take
    /// its public API out of a readiness-probed Service. Its queue is not probed.
    pub fn add_probes(&self, role: Role, config: &Config, readiness: &mut Readiness) {
        if config.database_url.is_none() || config.queue.url.is_none() {
            readiness.probe(Probe::DataDir(config.data_dir.clone()));
        }
        if let Some(db) = &self.task_db {
            readiness.probe(Probe::Database("task store", db.clone()));
        }
        if let Some(db) = &self.approval_db {
            readiness.probe(Probe::Database("approval store", db.clone()));
        }
        if let Some(queue) = &self.queue
            && role != Role::Task
        {
            readiness.probe(Probe::Queue(queue.clone()));
        }
    }
}
