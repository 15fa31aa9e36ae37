//! The services as a test starts them: four separate nodes on PostgreSQL + RabbitMQ
//! ([`Cluster`]), or one embedded node on SQLite and the in-process queue ([`Embedded`]).
//!
//! Every cluster has its own PostgreSQL database (the task and approval services each take
//! their own schema in it, as in production), its own queue and exchange prefix on the shared
//! broker (deleted when the cluster is dropped), and its own signing secret.

use shadowsync_common::auth::TokenIssuer;
use shadowsync_common::config::{Config, ConfigLoader};
use shadowsync_common::queue::{
    AmqpQueue, AmqpQueueOptions, Destination, Message, MessageQueue as _, Priority, Topology,
};
use shadowsync_common::secret::Secret;
use shadowsync_common::testing::TestDatabase;
use shadowsync_proto::common::v1::ExecuteTask;
use shadowsync_server::Role;

use crate::api::Endpoints;
use crate::node::{Node, NodeTelemetry};

/// The broker every test shares (`deploy/dev/services.sh`), overridable like the other servers.
pub fn amqp_url() -> String {
    std::env::var("SHADOWSYNC_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A fixed AES-256-GCM key (base64 of 32 bytes): tests never read it back.
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The audience of every token (the configuration default).
const AUDIENCE: &str = "shadowsync";

/// The task service's event subscription (`shadowsync_task`'s `SUBSCRIPTION`).
const TASK_SUBSCRIPTION: &str = "task.approval-events";

/// Options of [`Cluster::start_with`].
#[derive(Debug, Clone, Copy)]
pub struct ClusterOptions {
    /// Executors started with the cluster (more can be added later).
    pub executors: usize,
    /// `executor.table_parallelism` of every executor.
    pub table_parallelism: usize,
    /// `task.execution_lease_seconds`: how soon a dead executor's task moves on.
    pub execution_lease_seconds: u64,
    /// `executor.shutdown_grace_seconds`: how long a stopping executor lets its tasks run on.
    pub shutdown_grace_seconds: u64,
}

impl ClusterOptions {
    /// The defaults with `executors` executors.
    pub fn executors(executors: usize) -> Self {
        Self {
            executors,
            ..Self::default()
        }
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            executors: 1,
            table_parallelism: 1,
            execution_lease_seconds: 30,
            shutdown_grace_seconds: 20,
        }
    }
}

/// Deletes every queue and exchange under `prefix` from the shared broker, blocking: callable
/// from `Drop` inside a test's runtime (it runs on a thread with its own small runtime).
pub fn delete_topology(prefix: String) {
    let cleaner = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            if let Ok(queue) =
                AmqpQueue::new(AmqpQueueOptions::new(amqp_url(), Topology::new(prefix)))
            {
                // Declared so that `delete_topology` deletes it with the rest: the task
                // service's event subscription.
                let _ = queue
                    .declare_subscription(TASK_SUBSCRIPTION, &["approval.*.shadow_table_sync"])
                    .await;
                let _ = queue.delete_topology().await;
            }
        });
    });
    let _ = cleaner.join();
}

/// The four services, each a separate node.
pub struct Cluster {
    pub task: Node,
    pub approval: Node,
    pub analysis: Node,
    pub executors: Vec<Node>,
    secret: Secret<String>,
    prefix: String,
    store: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A cluster with one executor, every node SERVING.
    pub async fn start() -> Self {
        Self::start_with(ClusterOptions::default()).await
    }

    /// A cluster with `options.executors` executors, every node SERVING.
    pub async fn start_with(options: ClusterOptions) -> Self {
        Self::start_observed(options, &[], &mut |_, _| None).await
    }

    /// [`Cluster::start_with`], every node with the `extra` configuration flags and the
    /// telemetry `telemetry` makes for it (given its role and configuration).
    pub async fn start_observed(
        options: ClusterOptions,
        extra: &[String],
        telemetry: &mut dyn FnMut(Role, &Config) -> Option<NodeTelemetry>,
    ) -> Self {
        crate::init_logging();
        let store = TestDatabase::postgres().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = Secret::new(format!("secret-{}", uuid::Uuid::new_v4().simple()));
        let prefix = format!("systest-{}.", uuid::Uuid::new_v4().simple());

        let task_listener = Node::reserve();
        let approval_listener = Node::reserve();
        let analysis_listener = Node::reserve();
        let url = |listener: &std::net::TcpListener| {
            format!("http://{}", listener.local_addr().expect("address"))
        };
        let base = vec![
            format!("data_dir={}", dir.path().display()),
            format!("auth.hs256_secret={}", secret.expose()),
            format!("encryption.key={ENCRYPTION_KEY}"),
            format!("database.url={}", store.url),
            format!("queue.url={}", amqp_url()),
            format!("queue.prefix={prefix}"),
            format!("endpoints.task={}", url(&task_listener)),
            format!("endpoints.approval={}", url(&approval_listener)),
            format!("endpoints.analysis={}", url(&analysis_listener)),
            format!("executor.table_parallelism={}", options.table_parallelism),
            format!(
                "task.execution_lease_seconds={}",
                options.execution_lease_seconds
            ),
            format!(
                "executor.shutdown_grace_seconds={}",
                options.shutdown_grace_seconds
            ),
        ];
        let mut base = base;
        base.extend_from_slice(extra);
        let config = config(&base);
        let mut start = |role: Role, listener: std::net::TcpListener| {
            let observed = telemetry(role, &config);
            Node::start_observed(role, config.clone(), listener, observed)
        };
        let task = start(Role::Task, task_listener);
        let approval = start(Role::Approval, approval_listener);
        let analysis = start(Role::Analysis, analysis_listener);
        let mut cluster = Self {
            task,
            approval,
            analysis,
            executors: Vec::new(),
            secret,
            prefix,
            store,
            _dir: dir,
        };
        for node in [&cluster.task, &cluster.approval, &cluster.analysis] {
            node.wait_serving().await;
        }
        for _ in 0..options.executors {
            let config = cluster.task.config().clone();
            let observed = telemetry(Role::Executor, &config);
            let node = Node::start_observed(Role::Executor, config, Node::reserve(), observed);
            node.wait_serving().await;
            cluster.executors.push(node);
        }
        cluster
    }

    /// Starts one more executor on the shared queue and waits until it is SERVING; returns its
    /// index in [`Cluster::executors`].
    pub async fn add_executor(&mut self) -> usize {
        let node = Node::start(Role::Executor, self.task.config().clone(), Node::reserve());
        node.wait_serving().await;
        self.executors.push(node);
        self.executors.len() - 1
    }

    /// Starts `count` more executors at once (so they subscribe to the queue together) and
    /// waits until all are SERVING.
    pub async fn add_executors(&mut self, count: usize) {
        let first = self.executors.len();
        for _ in 0..count {
            self.executors.push(Node::start(
                Role::Executor,
                self.task.config().clone(),
                Node::reserve(),
            ));
        }
        for node in &self.executors[first..] {
            node.wait_serving().await;
        }
    }

    /// Publishes `message` as is on this cluster's execute queue: how a test plays a malformed
    /// or forged delivery.
    pub async fn publish_raw(&self, message: &Message) {
        let queue = AmqpQueue::new(AmqpQueueOptions::new(
            amqp_url(),
            Topology::new(self.prefix.clone()),
        ))
        .expect("queue");
        queue
            .publish(&Destination::ExecuteQueue, message)
            .await
            .expect("publish");
        queue.close().await;
    }

    /// Publishes an `ExecuteTask` message on this cluster's execute queue, as the approval
    /// service does: how a test plays a duplicate or forged delivery.
    pub async fn publish_execute(&self, task_id: i64, attempt: u32, priority: u8) {
        let queue = AmqpQueue::new(AmqpQueueOptions::new(
            amqp_url(),
            Topology::new(self.prefix.clone()),
        ))
        .expect("queue");
        let message = Message::from_protobuf(&ExecuteTask {
            task_id,
            attempt,
            priority: u32::from(priority),
            dispatch_time: None,
        })
        .with_id(format!("test-{}", uuid::Uuid::new_v4().simple()))
        .with_priority(Priority::new(priority).expect("priority"));
        queue
            .publish(&Destination::ExecuteQueue, &message)
            .await
            .expect("publish");
        queue.close().await;
    }

    /// Messages ready (not delivered) on the execute queue, read with a passive declaration.
    pub async fn execute_queue_ready(&self) -> u32 {
        let topology = Topology::new(self.prefix.clone());
        ready(topology.execute_queue().to_string()).await
    }

    /// Messages on the execute queue's dead-letter queue (nothing consumes it).
    pub async fn dead_letters(&self) -> u32 {
        let topology = Topology::new(self.prefix.clone());
        ready(
            topology
                .dead_letter_queue(&topology.execute_queue())
                .to_string(),
        )
        .await
    }

    /// Waits until exactly `count` messages are ready on the execute queue (the outbox relays
    /// publish shortly after their transactions commit).
    pub async fn wait_execute_queue_ready(&self, count: u32) {
        let deadline = tokio::time::Instant::now() + crate::api::PATIENCE;
        loop {
            let ready = self.execute_queue_ready().await;
            if ready == count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{ready} messages ready on the execute queue, expected {count}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Where clients reach the public APIs, and tokens for any user.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::new(
            self.task.url(),
            self.approval.url(),
            TokenIssuer::hs256(&self.secret, AUDIENCE),
        )
    }

    /// The PostgreSQL database holding the task and approval stores (schemas `task` and
    /// `approval`): for tests that play someone tampering with a store.
    pub fn store_url(&self) -> &str {
        &self.store.url
    }

    /// The queue and exchange prefix of this cluster on the shared broker.
    pub fn queue_prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.executors.iter_mut().chain([
            &mut self.task,
            &mut self.approval,
            &mut self.analysis,
        ]) {
            node.kill();
        }
        delete_topology(self.prefix.clone());
    }
}

/// `serve all` on the embedded defaults: SQLite files and the in-process queue under a
/// temporary data directory.
pub struct Embedded {
    pub node: Node,
    secret: Secret<String>,
    _dir: tempfile::TempDir,
}

impl Embedded {
    /// Starts the embedded server and waits until it is SERVING.
    pub async fn start() -> Self {
        crate::init_logging();
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = Secret::new(format!("secret-{}", uuid::Uuid::new_v4().simple()));
        let mut config = config(&[
            format!("data_dir={}", dir.path().display()),
            format!("auth.hs256_secret={}", secret.expose()),
        ]);
        assert!(shadowsync_server::is_embedded(Role::All, &config));
        // What `shadowsync serve all` does first: the data directory, keys and admin token.
        shadowsync_server::embedded::prepare(&mut config).expect("embedded data directory");
        let node = Node::start(Role::All, config, Node::reserve());
        node.wait_serving().await;
        Self {
            node,
            secret,
            _dir: dir,
        }
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints::new(
            self.node.url(),
            self.node.url(),
            TokenIssuer::hs256(&self.secret, AUDIENCE),
        )
    }
}

/// Messages ready on queue `name` of the shared broker, read with a passive declaration.
async fn ready(name: String) -> u32 {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{FieldTable, ShortString};
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("connect to the broker");
    let channel = connection.create_channel().await.expect("channel");
    let queue = channel
        .queue_declare(
            ShortString::from(name.clone()),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("queue {name}: {e}"));
    let _ = connection.close(200, "done".into()).await;
    queue.message_count()
}

fn config(flags: &[String]) -> Config {
    ConfigLoader::new()
        .flags(flags.iter().map(String::as_str))
        .load()
        .expect("test configuration")
}
