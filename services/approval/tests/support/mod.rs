//! A real approval server on 127.0.0.1:0 over a fresh PostgreSQL database and RabbitMQ with
//! unique names, clients holding tokens for different people, and helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shadowsync_approval::{ApprovalApi, ApprovalDeps, add_routes, prepare};
use shadowsync_common::auth::{AuthLayer, Authenticator, Identity, TokenIssuer};
use shadowsync_common::clock::{Clock, ManualClock};
use shadowsync_common::config::AuthConfig;
use shadowsync_common::db::{Backend, Database};
use shadowsync_common::grpc::{self, AuthenticatedChannel};
use shadowsync_common::queue::{AmqpQueue, AmqpQueueOptions, Delivery, DeliveryStream, Topology};
use shadowsync_common::secret::Secret;
use shadowsync_common::testing::TestDatabase;
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::approval::v1::approval_service_client::ApprovalServiceClient;
use tokio_util::sync::CancellationToken;

/// Runs an `async fn(Backend)` test body once per backend, as `<name>::postgres` and
/// `<name>::sqlite` (the caller declares `#[macro_use] mod support;`).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn postgres() {
                super::$name(shadowsync_common::db::Backend::Postgres).await;
            }

            #[tokio::test]
            async fn sqlite() {
                super::$name(shadowsync_common::db::Backend::Sqlite).await;
            }
        }
    )*};
}

pub const SECRET: &str = "approval-test-secret-approval-test-secret";

pub type Client = ApprovalServiceClient<AuthenticatedChannel>;

pub fn amqp_uri() -> String {
    std::env::var("SHADOWSYNC_TEST_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub struct Harness {
    pub api: ApprovalApi,
    pub clock: ManualClock,
    pub queue: AmqpQueue,
    pub topology: Topology,
    pub db: Database,
    address: std::net::SocketAddr,
    issuer: TokenIssuer,
    stop: CancellationToken,
    _store: TestDatabase,
}

impl Harness {
    /// A server whose queue talks to `amqp_uri` (the broker, or a proxy in front of it).
    pub async fn start_with(amqp: String) -> Self {
        Self::start_over(amqp, TestDatabase::postgres().await).await
    }

    /// A server whose store is a fresh database of `backend` (PostgreSQL or SQLite).
    pub async fn start_on(backend: Backend) -> Self {
        Self::start_over(amqp_uri(), TestDatabase::new(backend).await).await
    }

    async fn start_over(amqp: String, store: TestDatabase) -> Self {
        let db = Database::connect(&store.url, "approval").await.unwrap();
        let clock = ManualClock::new(1_800_000_000_000_000);
        prepare(&db, &clock).await.unwrap();
        let topology = Topology::new(format!("test-{}.", uuid::Uuid::new_v4()))
            .expire_unused_after(Duration::from_secs(300));
        let queue = AmqpQueue::new(
            AmqpQueueOptions::new(amqp, topology.clone())
                .with_connect_timeout(Duration::from_secs(2))
                .with_operation_timeout(Duration::from_secs(3)),
        )
        .unwrap();
        let api = ApprovalApi::new(ApprovalDeps {
            db: db.clone(),
            queue: Arc::new(queue.clone()),
            clock: Arc::new(clock.clone()) as Arc<dyn Clock>,
        });
        let config = AuthConfig {
            hs256_secret: Some(Secret::new(SECRET.to_string())),
            rs256_public_keys: Vec::new(),
            audience: "shadowsync".into(),
            service_token: None,
            ..AuthConfig::default()
        };
        let auth = AuthLayer::new(Arc::new(Authenticator::from_config(&config).unwrap()));
        let mut routes = tonic::service::RoutesBuilder::default();
        add_routes(&mut routes, api.clone(), auth);
        let router = grpc::server_builder(None)
            .unwrap()
            .add_routes(routes.routes());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move { grpc::serve(router, listener, stopped.cancelled_owned()).await });
        Self {
            api,
            clock,
            queue,
            topology,
            db,
            address,
            issuer: TokenIssuer::hs256(&Secret::new(SECRET.to_string()), "shadowsync"),
            stop,
            _store: store,
        }
    }

    pub async fn start() -> Self {
        Self::start_with(amqp_uri()).await
    }

    /// A client calling as `subject` with `roles`.
    pub fn client(&self, subject: &str, roles: &[&str]) -> Client {
        let token = self
            .issuer
            .issue(&Identity::user(subject, roles), Duration::from_secs(600));
        let channel = grpc::channel(&format!("http://{}", self.address), None).unwrap();
        ApprovalServiceClient::new(grpc::authenticated(channel, &token).unwrap())
    }

    pub fn admin(&self) -> Client {
        self.client("root", &["admin"])
    }

    /// Publishes every due outbox row now.
    pub async fn relay(&self) -> usize {
        self.api.relay().relay_due().await.unwrap()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.queue.delete_topology().await;
        use shadowsync_common::queue::MessageQueue as _;
        self.queue.close().await;
        self.db.close().await;
    }
}

pub fn node(
    users: &[&str],
    roles: &[&str],
    mode: pb::ApprovalMode,
    quorum: u32,
) -> pb::TemplateNode {
    pb::TemplateNode {
        name: "review".into(),
        approver_users: users.iter().map(|s| s.to_string()).collect(),
        approver_roles: roles.iter().map(|s| s.to_string()).collect(),
        mode: mode.into(),
        quorum,
        auto_approve: false,
    }
}

pub fn auto_node() -> pb::TemplateNode {
    pb::TemplateNode {
        name: "auto".into(),
        auto_approve: true,
        ..Default::default()
    }
}

pub async fn create_template(
    admin: &mut Client,
    name: &str,
    rule: pb::MatchRule,
    nodes: Vec<pb::TemplateNode>,
) -> pb::Template {
    admin
        .create_template(pb::CreateTemplateRequest {
            template: Some(pb::Template {
                name: name.into(),
                enabled: true,
                match_rule: Some(rule),
                nodes,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap()
}

/// A generic request submitted by the caller itself.
pub async fn submit(
    client: &mut Client,
    request_type: &str,
    resource_id: &str,
    environment: &str,
) -> pb::Approval {
    client
        .submit_approval(pb::SubmitApprovalRequest {
            request_type: request_type.into(),
            resource: Some(pb::ResourceRef {
                r#type: "thing".into(),
                id: resource_id.into(),
                display_name: String::new(),
            }),
            attributes: Some(pb::MatchAttributes {
                environment: environment.into(),
                ..Default::default()
            }),
            request_id: format!("req-{resource_id}"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap()
}

/// A `shadow_table_sync` request from the task service for `task_id` on behalf of `person`.
pub async fn submit_task(
    task: &mut Client,
    task_id: i64,
    person: &str,
    environment: &str,
) -> pb::Approval {
    task.submit_approval(pb::SubmitApprovalRequest {
        request_type: "shadow_table_sync".into(),
        resource: Some(pb::ResourceRef {
            r#type: "task".into(),
            id: task_id.to_string(),
            display_name: String::new(),
        }),
        attributes: Some(pb::MatchAttributes {
            environment: environment.into(),
            connection_id: "c1".into(),
            database: "shop".into(),
            ..Default::default()
        }),
        payload_sha256: "ab".repeat(32),
        on_behalf_of: Some(shadowsync_proto::common::v1::Actor {
            subject: person.into(),
            display_name: person.into(),
            roles: vec!["dev".into()],
        }),
        request_id: format!("task-{task_id}"),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .approval
    .unwrap()
}

pub async fn approve(client: &mut Client, id: &str) -> Result<pb::Approval, tonic::Status> {
    client
        .approve(pb::ApproveRequest {
            approval_id: id.into(),
            comment: "ok".into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().approval.unwrap())
}

pub async fn next_delivery(stream: &mut DeliveryStream) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a delivery in time")
        .expect("stream open")
        .expect("a delivery")
}

pub async fn no_delivery(stream: &mut DeliveryStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(700), stream.next()).await {
        panic!(
            "expected no delivery, got {:?}",
            item.map(|d| d.map(|d| d.message().message_type.clone()))
        );
    }
}
