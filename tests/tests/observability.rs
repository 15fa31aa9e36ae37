//! Issue 16's must-show: the four services as separate servers on PostgreSQL + RabbitMQ, each
//! with its own telemetry exporting to an in-process OTLP receiver and writing JSON logs, and
//! one journey (analysis, submit, approve, execution of a two-table task) that an operator can
//! follow as one navigable trace, count in `/metrics`, and join to its log lines.
//!
//! The client's steps run under one span of its own (as a platform pipeline's would): the
//! services continue it over gRPC metadata; the approval's dispatch stores its context in the
//! outbox row, the relay publishes it; the execution starts a trace of its own linked to the
//! publish (see `shadowsync_common::telemetry::messaging::Relation`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use shadowsync_common::config::{Config, LogFormat};
use shadowsync_common::telemetry::{self, TelemetryConfig, TelemetryGuard};
use shadowsync_proto::common::v1::Dialect;
use shadowsync_proto::task::v1::*;
use shadowsync_server::Role;
use shadowsync_system_tests::api::{self, PATIENCE};
use shadowsync_system_tests::cluster::{Cluster, ClusterOptions};
use shadowsync_system_tests::node::NodeTelemetry;
use shadowsync_system_tests::observe::{CapturedLogs, Exposition, ReceivedSpan, Receiver, scrape};
use shadowsync_system_tests::target::MariaDb;
use tracing::Instrument as _;

const CLIENT: &str = "systest-client";

/// Every span by id; each parent a span names must be there too (no dangling link).
struct Trace<'a> {
    by_id: HashMap<&'a str, &'a ReceivedSpan>,
}

impl<'a> Trace<'a> {
    fn new(spans: &'a [ReceivedSpan]) -> Self {
        Self {
            by_id: spans.iter().map(|s| (s.span_id.as_str(), s)).collect(),
        }
    }

    /// `span` and its ancestors up to its root, checking each hop stays in the same trace.
    fn chain(&self, span: &'a ReceivedSpan) -> Vec<&'a ReceivedSpan> {
        let mut chain = vec![span];
        let mut current = span;
        while !current.parent_span_id.is_empty() {
            let parent = self
                .by_id
                .get(current.parent_span_id.as_str())
                .unwrap_or_else(|| {
                    panic!(
                        "{} ({}) names parent {} that no service exported",
                        current.name, current.service, current.parent_span_id
                    )
                });
            assert_eq!(
                parent.trace_id, current.trace_id,
                "a parent in another trace"
            );
            chain.push(parent);
            current = parent;
        }
        chain
    }

    fn descends_from(&self, span: &'a ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
        self.chain(span)
            .iter()
            .any(|s| s.span_id == ancestor.span_id)
    }
}

fn one<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    matches: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| matches(s)).collect();
    assert_eq!(found.len(), 1, "expected one {what}, found {found:#?}");
    found[0]
}

fn rpc<'a>(
    spans: &'a [ReceivedSpan],
    service: &str,
    kind: SpanKind,
    method: &str,
) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| {
            s.service == service && s.kind == kind && s.name.ends_with(&format!("/{method}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_journey_is_one_navigable_trace_with_metrics_and_correlated_logs() {
    let receiver = Receiver::start();
    let metrics_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("metrics port");
    let metrics_address = metrics_listener.local_addr().expect("address");
    let mut metrics_listener = Some(metrics_listener);
    let logs: Arc<Mutex<Vec<(Role, CapturedLogs)>>> = Arc::default();
    let guards: Arc<Mutex<Vec<TelemetryGuard>>> = Arc::default();
    let no_env = HashMap::new();
    let build = |service: &str, config: &TelemetryConfig, captured: CapturedLogs| {
        // The exporters' connections live on the receiver's runtime.
        let _runtime = receiver.handle().enter();
        let mut config = config.clone();
        config.service_name = service.to_string();
        telemetry::build(&config, captured).expect("telemetry")
    };
    let extra = vec![
        format!("otlp.endpoint={}", receiver.endpoint),
        "log.format=json".to_string(),
        "log.filter=info".to_string(),
    ];
    let mut node_telemetry = |role: Role, config: &Config| {
        let service = format!("shadowsync-{}", role.name());
        let settings =
            TelemetryConfig::from_config(&service, config, &no_env).expect("telemetry config");
        let captured = CapturedLogs::default();
        let (dispatch, guard) = build(&service, &settings, captured.clone());
        logs.lock().expect("logs").push((role, captured));
        guards.lock().expect("guards").push(guard);
        Some(NodeTelemetry {
            dispatch,
            metrics: (role == Role::Task)
                .then(|| metrics_listener.take())
                .flatten(),
        })
    };
    let cluster =
        Cluster::start_observed(ClusterOptions::default(), &extra, &mut node_telemetry).await;

    // The client: its own subscriber, exporting too.
    let client_logs = CapturedLogs::default();
    let mut client_settings = TelemetryConfig::local(CLIENT, LogFormat::Json, "info");
    client_settings.otlp_endpoint = Some(receiver.endpoint.clone());
    let (client_dispatch, client_guard) = build(CLIENT, &client_settings, client_logs);
    let _client = tracing::dispatcher::set_default(&client_dispatch);

    let db = MariaDb::create("ss_sys_obs").await;
    db.exec(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, total DECIMAL(10,2) NOT NULL);\n\
         CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(80) NOT NULL)",
    )
    .await;
    let endpoints = cluster.endpoints();
    let mut admin = endpoints.user("root-admin", &["admin"]);
    let mut alice = endpoints.user("alice", &["dev"]);
    let mut bob = endpoints.user("bob", &["admin"]);
    let connection = admin.add_connection("test").await;
    admin.grant("alice", &connection).await;
    // A connection whose password must never reach a span, a log line or a label.
    let decoy_password = format!("decoy-pw-{}", uuid::Uuid::new_v4().simple());
    let (host, port) = shadowsync_system_tests::target::host_and_port();
    admin
        .task
        .create_connection(CreateConnectionRequest {
            connection: Some(ConnectionSpec {
                name: format!("decoy-{}", uuid::Uuid::new_v4().simple()),
                dialect: Dialect::Mariadb as i32,
                host,
                port,
                username: "decoy".into(),
                password: decoy_password.clone(),
                environment: "test".into(),
                options: Default::default(),
            }),
            request_id: String::new(),
        })
        .await
        .expect("decoy connection");

    let journey = tracing::info_span!("journey");
    let task_id = async {
        let analysis = alice.analyse(&connection, &db.name).await;
        assert_eq!(analysis.create_count, 2, "{analysis:?}");
        let task = alice.submit(&analysis.id, ErrorStrategy::Abort).await;
        bob.approve(task.id).await;
        task.id
    }
    .instrument(journey)
    .await;
    alice
        .wait_status(task_id, TaskStatus::ExecutionSucceeded)
        .await;

    // Every service flushes until the execution's last spans have arrived.
    let flush = || {
        for guard in guards.lock().expect("guards").iter() {
            guard.force_flush();
        }
        client_guard.force_flush();
    };
    api::until("the execution's spans are exported", || {
        flush();
        let spans = receiver.received.spans();
        async move {
            spans
                .iter()
                .filter(|s| s.name.starts_with("CREATE TABLE"))
                .count()
                == 2
                && spans
                    .iter()
                    .any(|s| s.kind == SpanKind::Consumer && s.service == "shadowsync-executor")
                && spans.iter().any(|s| s.name == "journey")
        }
    })
    .await;
    let spans = receiver.received.spans();
    let trace = Trace::new(&spans);

    // Spans from all four services (and the client).
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    for service in [
        "shadowsync-task",
        "shadowsync-approval",
        "shadowsync-analysis",
        "shadowsync-executor",
        CLIENT,
    ] {
        assert!(
            services.contains(service),
            "no span from {service}: {services:?}"
        );
    }

    // The client's SubmitTask, continued by the task service, with the RPC conventions.
    let journey = one(&spans, "journey span", |s| s.name == "journey");
    let submit_client = rpc(&spans, CLIENT, SpanKind::Client, "SubmitTask");
    assert_eq!(submit_client.len(), 1);
    let submit_client = submit_client[0];
    assert_eq!(submit_client.parent_span_id, journey.span_id);
    let submit_server = rpc(&spans, "shadowsync-task", SpanKind::Server, "SubmitTask");
    assert_eq!(submit_server.len(), 1);
    let submit_server = submit_server[0];
    assert_eq!(submit_server.parent_span_id, submit_client.span_id);
    assert_eq!(submit_server.trace_id, submit_client.trace_id);
    assert_eq!(submit_server.attribute("rpc.system"), Some("grpc"));
    assert_eq!(
        submit_server.attribute("rpc.service"),
        Some("shadowsync.task.v1.TaskService")
    );
    assert_eq!(submit_server.attribute("rpc.method"), Some("SubmitTask"));
    assert_eq!(submit_server.attribute("rpc.grpc.status_code"), Some("0"));

    // The analysis service's work belongs to the journey too, with its table count.
    let analysis = one(&spans, "analysis span", |s| {
        s.service == "shadowsync-analysis" && s.name == "analysis"
    });
    assert_eq!(analysis.attribute("shadowsync.analysis.tables"), Some("2"));
    assert!(
        spans
            .iter()
            .any(|s| s.service == "shadowsync-analysis" && s.name == "introspection batch"),
        "no introspection batch span"
    );

    // The approval's dispatch descends from the client's approval, in the journey's trace.
    let dispatch = one(&spans, "dispatch span", |s| {
        s.service == "shadowsync-approval" && s.name == "approval dispatch"
    });
    assert!(
        trace.descends_from(dispatch, journey),
        "dispatch outside the journey"
    );
    let approve_server = rpc(&spans, "shadowsync-task", SpanKind::Server, "ApproveTask");
    assert!(
        approve_server
            .iter()
            .any(|approve| trace.descends_from(dispatch, approve)),
        "the dispatch does not descend from ApproveTask"
    );

    // The relay's publish continues the context stored with the outbox row.
    let publish = one(&spans, "ExecuteTask publish", |s| {
        s.kind == SpanKind::Producer
            && s.attribute("messaging.message.type") == Some("shadowsync.common.v1.ExecuteTask")
    });
    assert_eq!(publish.parent_span_id, dispatch.span_id);
    assert_eq!(publish.attribute("messaging.system"), Some("rabbitmq"));

    // The execution: a trace of its own, linked to the publish.
    let process = one(&spans, "execute process span", |s| {
        s.service == "shadowsync-executor" && s.kind == SpanKind::Consumer
    });
    assert!(process.parent_span_id.is_empty(), "the execution is a root");
    assert_eq!(
        process.links,
        vec![(publish.trace_id.clone(), publish.span_id.clone())],
        "the execution links to the dispatch's publish"
    );
    let claim_client = rpc(
        &spans,
        "shadowsync-executor",
        SpanKind::Client,
        "ClaimExecution",
    );
    assert_eq!(claim_client.len(), 1);
    assert!(trace.descends_from(claim_client[0], process));
    let claim_server = rpc(
        &spans,
        "shadowsync-task",
        SpanKind::Server,
        "ClaimExecution",
    );
    assert_eq!(claim_server.len(), 1);
    assert_eq!(claim_server[0].parent_span_id, claim_client[0].span_id);

    // One span per statement, under its table's, under the execution.
    let statements: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.service == "shadowsync-executor" && s.name.starts_with("CREATE TABLE"))
        .collect();
    let mut shadows: Vec<&str> = statements
        .iter()
        .map(|s| {
            assert!(trace.descends_from(s, process), "{s:?}");
            assert_eq!(s.kind, SpanKind::Client);
            assert_eq!(s.attribute("db.system.name"), Some("mysql"));
            assert!(
                s.attribute("db.query.text")
                    .is_some_and(|q| q.starts_with("CREATE TABLE"))
            );
            let table = trace.by_id[s.parent_span_id.as_str()];
            assert_eq!(
                table.attribute("db.collection.name"),
                s.attribute("db.collection.name")
            );
            assert_eq!(
                table.attribute("shadowsync.table.status"),
                Some("SUCCEEDED")
            );
            s.attribute("db.collection.name").expect("shadow")
        })
        .collect();
    shadows.sort_unstable();
    assert_eq!(shadows, ["_test_customers", "_test_orders"]);

    // No secret anywhere: the decoy password, the signing secret, any bearer token.
    let secret = cluster
        .task
        .config()
        .auth
        .hs256_secret
        .as_ref()
        .expect("secret")
        .expose()
        .clone();
    let captured: Vec<(Role, CapturedLogs)> = logs.lock().expect("logs").clone();
    let all_logs: String = captured.iter().map(|(_, l)| l.text()).collect();
    for span in &spans {
        for (key, value) in &span.attributes {
            for forbidden in [decoy_password.as_str(), secret.as_str(), "Bearer "] {
                assert!(
                    !value.contains(forbidden),
                    "{key} of {} leaks a secret",
                    span.name
                );
            }
        }
    }
    for forbidden in [decoy_password.as_str(), secret.as_str(), "Bearer "] {
        assert!(!all_logs.contains(forbidden), "a log line leaks a secret");
    }

    // JSON log lines carry the trace ids of the spans they were written in.
    let span_ids: BTreeSet<(&str, &str)> = spans
        .iter()
        .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
        .collect();
    for (role, captured) in &captured {
        let lines = captured.lines();
        assert!(!lines.is_empty(), "{role:?} logged nothing");
        for line in &lines {
            assert_eq!(
                line["service"],
                format!("shadowsync-{}", role.name()),
                "{line}"
            );
            let message = line["message"].as_str().unwrap_or_default();
            assert!(!message.contains("Some("), "debug formatting in {line}");
            if let (Some(trace_id), Some(span_id)) =
                (line["trace_id"].as_str(), line["span_id"].as_str())
            {
                assert!(
                    span_ids.contains(&(trace_id, span_id)) || !line["span"].is_object(),
                    "a log line names a span no service exported: {line}"
                );
            }
        }
        let in_trace = |trace_id: &str| {
            lines
                .iter()
                .any(|line| line["trace_id"].as_str() == Some(trace_id))
        };
        match role {
            Role::Task => assert!(
                in_trace(&submit_server.trace_id),
                "no task log in the journey"
            ),
            Role::Executor => {
                assert!(
                    in_trace(&process.trace_id),
                    "no executor log in the execution"
                )
            }
            _ => {}
        }
    }

    // `/metrics`, scraped as Prometheus would, counts the journey.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let exposition = loop {
        let exposition = Exposition::parse(&scrape(metrics_address).await);
        let succeeded = exposition.sum(
            "shadowsync_tasks",
            &[("shadowsync_task_status", "EXECUTION_SUCCEEDED")],
        );
        if succeeded == 1.0 {
            break exposition;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task status gauge never showed the success"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let types = &exposition.types;
    for (family, kind) in [
        ("rpc_server_call_duration_seconds", "histogram"),
        ("rpc_client_call_duration_seconds", "histogram"),
        ("shadowsync_tasks", "gauge"),
        ("shadowsync_task_transitions_total", "counter"),
        ("shadowsync_approval_decisions_total", "counter"),
        ("messaging_client_sent_messages_total", "counter"),
        ("messaging_client_consumed_messages_total", "counter"),
        ("shadowsync_executor_active_tasks", "gauge"),
        ("shadowsync_outbox_backlog", "gauge"),
        ("shadowsync_outbox_oldest_age_seconds", "gauge"),
        ("shadowsync_analysis_duration_seconds", "histogram"),
        ("shadowsync_analysis_tables_total", "counter"),
        ("db_client_operation_duration_seconds", "histogram"),
        ("shadowsync_execution_tables_total", "counter"),
        ("shadowsync_build_info", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    let value = |name: &str, labels: &[(&str, &str)]| exposition.sum(name, labels);
    assert_eq!(
        value(
            "shadowsync_task_transitions_total",
            &[("shadowsync_task_status", "EXECUTION_SUCCEEDED")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "shadowsync_execution_tables_total",
            &[("shadowsync_table_status", "SUCCEEDED")]
        ),
        2.0
    );
    assert_eq!(
        value("db_client_operation_duration_seconds_count", &[]),
        2.0
    );
    assert_eq!(
        value(
            "db_client_operation_duration_seconds_bucket",
            &[("le", "+Inf"), ("db_operation_name", "CREATE TABLE")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "shadowsync_approval_decisions_total",
            &[("shadowsync_approval_decision", "approve")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "rpc_server_call_duration_seconds_count",
            &[("rpc_method", "SubmitTask"), ("rpc_grpc_status_code", "0")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "shadowsync_analysis_tables_total",
            &[("shadowsync_table_result", "CREATE")]
        ),
        2.0
    );
    assert!(value("shadowsync_analysis_duration_seconds_count", &[]) >= 1.0);
    let execute_queue = format!("{}shadowsync.execute", cluster.queue_prefix());
    assert_eq!(
        value(
            "messaging_client_consumed_messages_total",
            &[("messaging_destination_name", execute_queue.as_str())]
        ),
        1.0
    );
    assert!(
        value(
            "messaging_client_sent_messages_total",
            &[("messaging_destination_name", execute_queue.as_str())]
        ) >= 1.0
    );
    assert_eq!(value("shadowsync_executor_active_tasks", &[]), 0.0);
    assert_eq!(value("shadowsync_build_info", &[]), 1.0);
    // No label carries a secret either.
    for sample in &exposition.samples {
        for value in sample.labels.values() {
            assert!(!value.contains(&decoy_password) && !value.contains(&secret));
        }
    }
}
