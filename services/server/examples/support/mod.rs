//! What the benchmark examples share: `serve all` in this process (embedded, or on a throw-away
//! PostgreSQL database and RabbitMQ), clients for two admins, a connection to the local
//! MariaDB, and the calls and figures they all make.

#![allow(dead_code)] // each example uses its own part

use std::time::{Duration, Instant, SystemTime};

use shadowsync_common::auth::{BearerToken, Identity, TokenIssuer};
use shadowsync_common::config::ConfigLoader;
use shadowsync_common::grpc;
use shadowsync_common::grpc::Channel;
use shadowsync_common::telemetry::{self, TelemetryConfig};
use shadowsync_common::testing::TestDatabase;
use shadowsync_proto::approval::v1 as approval;
use shadowsync_proto::common::v1 as common;
use shadowsync_proto::task::v1 as task;
use shadowsync_server::{Role, embedded};
use tonic::service::interceptor::InterceptedService;

pub type Tasks =
    task::task_service_client::TaskServiceClient<InterceptedService<Channel, BearerToken>>;
pub type Approvals = approval::approval_service_client::ApprovalServiceClient<
    InterceptedService<Channel, BearerToken>,
>;

pub const POLL: Duration = Duration::from_millis(2);
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// `--name value` from the command line.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A running `serve all` with alice (who submits) and bob (who approves), both admins, and a
/// connection to the local MariaDB.
pub struct Bench {
    pub alice: Tasks,
    pub alice_approvals: Approvals,
    pub bob: Tasks,
    pub connection: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), shadowsync_server::ServerError>>,
    store: Option<TestDatabase>,
    prefix: String,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// Starts the server in `mode` (`embedded` or `postgres`) with `extra` configuration flags.
    pub async fn start(mode: &str, extra: &[String]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let prefix = format!("bench-{}.", uuid::Uuid::new_v4().simple());
        let mut flags = vec![
            "listen=127.0.0.1:0".to_string(),
            format!("data_dir={}", dir.path().display()),
            "log.filter=warn".to_string(),
        ];
        flags.extend_from_slice(extra);
        let store = match mode {
            "embedded" => None,
            "postgres" => {
                let store = TestDatabase::postgres().await;
                flags.extend([
                    format!("database.url={}", store.url),
                    format!("queue.url={AMQP_URL}"),
                    format!("queue.prefix={prefix}"),
                    format!("auth.hs256_secret={secret}"),
                    "encryption.key=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
                ]);
                Some(store)
            }
            other => anyhow::bail!("--mode is embedded or postgres, not {other}"),
        };
        let mut config = ConfigLoader::new()
            .flags(flags.iter().map(String::as_str))
            .load()?;
        if store.is_none() {
            embedded::prepare(&mut config)?;
        }
        let issuer = TokenIssuer::hs256(
            config
                .auth
                .hs256_secret
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no signing secret"))?,
            &config.auth.audience,
        );
        // The first bench's telemetry serves the whole process (its guard is kept for good);
        // a later bench finds it set and goes on.
        let mut telemetry_config =
            TelemetryConfig::local("shadowsync-bench", config.log_format, &config.log_filter);
        telemetry_config.otlp_endpoint = config.otlp_endpoint.clone();
        let _ = telemetry::init(&telemetry_config).map(std::mem::forget);
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(shadowsync_server::run(Role::All, config, listener, async {
            let _ = stopped.await;
        }));

        let client = |subject: &str| -> anyhow::Result<(Tasks, Approvals)> {
            let token = issuer.issue(
                &Identity::user(subject, &["admin"]),
                Duration::from_secs(7200),
            );
            let channel = grpc::channel(&url, None)?;
            Ok((
                Tasks::new(grpc::authenticated(channel.clone(), &token)?),
                Approvals::new(grpc::authenticated(channel, &token)?),
            ))
        };
        let (mut alice, alice_approvals) = client("alice")?;
        let (bob, _) = client("bob")?;
        wait_ready(&url).await?;

        let connection = alice
            .create_connection(task::CreateConnectionRequest {
                connection: Some(task::ConnectionSpec {
                    name: "bench".into(),
                    dialect: common::Dialect::Mariadb as i32,
                    host: "127.0.0.1".into(),
                    port: 3306,
                    username: "root".into(),
                    environment: "dev".into(),
                    ..Default::default()
                }),
                request_id: uuid::Uuid::new_v4().to_string(),
            })
            .await?
            .into_inner()
            .connection
            .ok_or_else(|| anyhow::anyhow!("no connection"))?
            .id;
        Ok(Self {
            alice,
            alice_approvals,
            bob,
            connection,
            stop,
            server,
            store,
            prefix,
            _dir: dir,
        })
    }

    /// Stops the server and deletes the broker topology it declared (PostgreSQL mode).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        let _ = self.server.await;
        if self.store.is_some() {
            use shadowsync_common::queue::MessageQueue as _;
            use shadowsync_common::queue::{AmqpQueue, AmqpQueueOptions, Topology};
            let queue = AmqpQueue::new(AmqpQueueOptions::new(
                AMQP_URL.to_string(),
                Topology::new(self.prefix),
            ))?;
            // Declared so that `delete_topology` deletes it with the rest: the task service's
            // event subscription.
            queue
                .declare_subscription("task.approval-events", &["approval.*.shadow_table_sync"])
                .await?;
            queue.delete_topology().await?;
        }
        Ok(())
    }
}

/// Waits for the server's overall health to be SERVING (store migrations done, queue up).
pub async fn wait_ready(url: &str) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let mut health = tonic_health::pb::health_client::HealthClient::new(grpc::channel(url, None)?);
    for _ in 0..1500 {
        let status = health
            .check(HealthCheckRequest::default())
            .await
            .map(|r| r.into_inner().status);
        if status.ok() == Some(ServingStatus::Serving as i32) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the server never became SERVING")
}

/// Analyses `tables` of `database` with the `_test_` prefix; returns the analysis id once it
/// succeeded.
pub async fn analyse(
    client: &mut Tasks,
    connection: &str,
    database: &str,
    tables: &[String],
) -> anyhow::Result<String> {
    let id = client
        .start_analysis(task::StartAnalysisRequest {
            connection_id: connection.into(),
            database: database.into(),
            range: common::SyncRange::Partial as i32,
            tables: tables.to_vec(),
            naming: Some(common::ShadowNaming {
                mode: common::ShadowNamingMode::Prefix as i32,
                affix: "_test_".into(),
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await?
        .into_inner()
        .analysis
        .ok_or_else(|| anyhow::anyhow!("no analysis"))?
        .id;
    loop {
        let analysis = client
            .get_analysis(task::GetAnalysisRequest {
                analysis_id: id.clone(),
                omit_tables: true,
                ..Default::default()
            })
            .await?
            .into_inner()
            .analysis
            .ok_or_else(|| anyhow::anyhow!("no analysis"))?;
        match task::AnalysisStatus::try_from(analysis.status) {
            Ok(task::AnalysisStatus::Succeeded) => return Ok(id),
            Ok(task::AnalysisStatus::Pending | task::AnalysisStatus::Running) => {
                tokio::time::sleep(POLL).await
            }
            other => anyhow::bail!("analysis {id} ended {other:?}"),
        }
    }
}

pub async fn submit(client: &mut Tasks, analysis: &str) -> anyhow::Result<i64> {
    Ok(client
        .submit_task(task::SubmitTaskRequest {
            analysis_id: analysis.into(),
            execution_mode: task::ExecutionMode::Immediate as i32,
            error_strategy: task::ErrorStrategy::Abort as i32,
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .task
        .ok_or_else(|| anyhow::anyhow!("no task"))?
        .id)
}

/// Submits `analysis` and waits until the task is EXECUTION_SUCCEEDED (an error otherwise);
/// returns the time from the submit call to then.
pub async fn submit_until_succeeded(
    client: &mut Tasks,
    analysis: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let id = submit(client, analysis).await?;
    let finished = wait_final(client, id).await?;
    let elapsed = started.elapsed();
    ensure_succeeded(&finished)?;
    Ok(elapsed)
}

pub fn ensure_succeeded(task: &task::Task) -> anyhow::Result<()> {
    anyhow::ensure!(
        task.status == task::TaskStatus::ExecutionSucceeded as i32,
        "task {} ended {:?}",
        task.id,
        task.status
    );
    Ok(())
}

pub async fn wait_final(client: &mut Tasks, id: i64) -> anyhow::Result<task::Task> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let current = client
            .get_task(task::GetTaskRequest { task_id: id })
            .await?
            .into_inner()
            .task
            .ok_or_else(|| anyhow::anyhow!("no task"))?;
        if current.finish_time.is_some() {
            return Ok(current);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "task {id} still {:?}",
            current.status
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Puts an enabled auto-approve template for every request first in the priority order.
pub async fn auto_approve_everything(client: &mut Approvals) -> anyhow::Result<()> {
    let template = client
        .create_template(approval::CreateTemplateRequest {
            template: Some(approval::Template {
                name: "bench auto-approve".into(),
                enabled: true,
                match_rule: Some(approval::MatchRule::default()),
                nodes: vec![approval::TemplateNode {
                    name: "auto".into(),
                    auto_approve: true,
                    ..Default::default()
                }],
                execution_priority: 10,
                ..Default::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await?
        .into_inner()
        .template
        .ok_or_else(|| anyhow::anyhow!("no template"))?;
    let version = client
        .get_priority(approval::GetPriorityRequest::default())
        .await?
        .into_inner()
        .version;
    client
        .set_priority(approval::SetPriorityRequest {
            template_ids: vec![template.id],
            expected_version: version,
        })
        .await?;
    Ok(())
}

pub fn since(start: SystemTime, end: prost_types::Timestamp) -> Duration {
    let end = SystemTime::UNIX_EPOCH
        + Duration::from_secs(end.seconds.max(0) as u64)
        + Duration::from_nanos(end.nanos.max(0) as u64);
    end.duration_since(start).unwrap_or_default()
}

pub fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    println!(
        "{what}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms mean={:.1} ms",
        samples.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
    );
}

/// An OTLP/gRPC receiver that counts and drops what it gets: the far end of the exporters when a
/// benchmark measures the cost of telemetry.
pub struct OtlpSink {
    pub endpoint: String,
    spans: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Default)]
struct SinkService(std::sync::Arc<std::sync::atomic::AtomicU64>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for SinkService
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter())
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(
            u64::try_from(spans).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService
    for SinkService
{
    async fn export(
        &self,
        _request: tonic::Request<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse,
        >,
        tonic::Status,
    > {
        Ok(tonic::Response::new(Default::default()))
    }
}

impl OtlpSink {
    /// Serves on 127.0.0.1 (a free port) until the process ends.
    pub async fn start() -> anyhow::Result<Self> {
        use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let service = SinkService::default();
        let spans = service.0.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service.clone()))
                .add_service(MetricsServiceServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Ok(Self { endpoint, spans })
    }

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.spans.load(std::sync::atomic::Ordering::Relaxed)
    }
}
