//! The chart runs: rendered with its default values (gRPC TLS on, secrets by reference, the
//! migration Job, probes on grpc.health.v1) plus only the queue prefix a shared broker needs,
//! every container it renders is started as a local process with exactly the command,
//! arguments and environment the manifests give it (see [`chart::Cluster::start`] for the part
//! of Kubernetes that is emulated), the Secrets made the README's way from
//! `shadowsync credentials generate`, and a shadow-table sync is driven through the task
//! service to EXECUTION_SUCCEEDED. A wrong variable name, port, ConfigMap, Secret or key in the
//! chart fails here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use shadowsync_common::auth::Identity;
use shadowsync_common::grpc::{self, ClientTls};
use shadowsync_common::secret::Secret;
use shadowsync_common::testing::TestDatabase;
use shadowsync_proto::task::v1::{ErrorStrategy, TaskStatus};
use shadowsync_system_tests::api::{Endpoints, Minter, Team};
use shadowsync_system_tests::chart::{self, NAMESPACE, Pod, RELEASE, Rendered, text};
use shadowsync_system_tests::cluster::{amqp_url, delete_topology};
use shadowsync_system_tests::target::{self, MariaDb};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICES: [&str; 4] = ["task", "approval", "analysis", "executor"];

fn dns_name(service: &str) -> String {
    format!("{RELEASE}-{service}.{NAMESPACE}.svc")
}

/// A CA and one certificate naming every service, as cert-manager would issue for the release,
/// plus the pods' emulated addresses.
fn tls_secret(addresses: &[Ipv4Addr]) -> BTreeMap<String, Vec<u8>> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let mut names: Vec<String> = SERVICES
        .iter()
        .flat_map(|s| [format!("{RELEASE}-{s}"), dns_name(s)])
        .collect();
    names.extend(addresses.iter().map(Ipv4Addr::to_string));
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &ca)
        .expect("sign");
    BTreeMap::from([
        ("tls.crt".to_string(), cert.pem().into_bytes()),
        ("tls.key".to_string(), key.serialize_pem().into_bytes()),
        ("ca.crt".to_string(), ca.pem().into_bytes()),
    ])
}

/// `kubectl create secret generic NAME --from-file=…` for these files of `dir`.
fn secret_from_files(dir: &std::path::Path, files: &[&str]) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(dir.join(file))
                .unwrap_or_else(|e| panic!("credentials generate wrote no {file}: {e}"));
            (file.to_string(), bytes)
        })
        .collect()
}

async fn health(address: Ipv4Addr, port: u16) -> Option<ServingStatus> {
    let channel = grpc::channel(&format!("http://{address}:{port}"), None).ok()?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// `GET /metrics` over plain HTTP/1.1.
async fn scrape(address: Ipv4Addr, port: u16) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect((address, port))
        .await
        .expect("metrics port answers");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// Waits for the pod's readiness probe to pass, as the kubelet would before routing to it.
async fn wait_ready(pod: &mut Pod) {
    let (kind, port) = pod.readiness_probe();
    assert_eq!(kind, "grpc", "{}: readiness asks grpc.health.v1", pod.name);
    for _ in 0..600 {
        pod.assert_running();
        if health(pod.ip, port).await == Some(ServingStatus::Serving) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never became ready:\n{}", pod.name, pod.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_container_runs_and_a_task_executes() {
    let bin = chart::Cluster::binaries();
    // Each pod's address: a loopback subnet of its own per run, so concurrent runs never meet.
    let subnet: [u8; 2] = {
        let id = uuid::Uuid::new_v4();
        [id.as_bytes()[0] | 1, id.as_bytes()[1]]
    };
    let address = |n: u8| Ipv4Addr::new(127, subnet[0], subnet[1], n);
    let addresses: Vec<Ipv4Addr> = (1..=6).map(address).collect();

    // The README's steps: generate credentials, create Secrets from them (never the signing key).
    let credentials = tempfile::tempdir().expect("credentials dir");
    let out = credentials.path().join("credentials");
    let generated = Command::new(bin.join("shadowsync"))
        .args(["credentials", "generate", "--out"])
        .arg(&out)
        .output()
        .expect("credentials generate runs");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let store = TestDatabase::postgres().await;
    let prefix = format!("chart-{}.", uuid::Uuid::new_v4().simple());
    let cluster = chart::Cluster {
        secrets: BTreeMap::from([
            (
                "shadowsync-database".to_string(),
                BTreeMap::from([("database-url".to_string(), store.url.clone().into_bytes())]),
            ),
            (
                "shadowsync-queue".to_string(),
                BTreeMap::from([("amqp-url".to_string(), amqp_url().into_bytes())]),
            ),
            (
                "shadowsync-credentials".to_string(),
                secret_from_files(
                    &out,
                    &[
                        "jwks.json",
                        "encryption.key",
                        "svc-task.token",
                        "svc-approval.token",
                        "svc-analysis.token",
                        "svc-executor.token",
                    ],
                ),
            ),
            ("shadowsync-tls".to_string(), tls_secret(&addresses)),
        ]),
        services: SERVICES
            .iter()
            .zip(1..)
            .map(|(s, n)| (dns_name(s), address(n)))
            .collect(),
        bin: bin.clone(),
    };
    let ca = cluster.secrets["shadowsync-tls"]["ca.crt"].clone();

    let rendered: Rendered = chart::render(&["--set", &format!("config.queuePrefix={prefix}")]);

    // The migration Job first: it must succeed before anything else (a pre-install hook).
    let jobs = rendered.of_kind("Job");
    assert_eq!(jobs.len(), 1);
    let job_spec = &jobs[0]["spec"]["template"]["spec"];
    let mut migrate = cluster.start(&rendered, "migrate", job_spec, address(5));
    let status = migrate.wait(Duration::from_secs(120));
    assert!(status.success(), "migration Job failed:\n{}", migrate.log());
    assert!(
        migrate.log().contains("task store: migrated from empty"),
        "{}",
        migrate.log()
    );

    let mut pods = Vec::new();
    for (service, n) in SERVICES.iter().zip(1..) {
        let name = format!("{RELEASE}-{service}");
        let deployment = rendered.get("Deployment", &name);
        pods.push(cluster.start(
            &rendered,
            &name,
            &deployment["spec"]["template"]["spec"],
            address(n),
        ));
    }
    for pod in &mut pods {
        wait_ready(pod).await;
    }

    // `helm test`: the test pod's `shadowctl health` against the release.
    let test_pods = rendered.of_kind("Pod");
    assert_eq!(test_pods.len(), 1);
    assert_eq!(
        text(test_pods[0], &["metadata", "annotations", "helm.sh/hook"]),
        "test"
    );
    let mut helm_test = cluster.start(&rendered, "test-health", &test_pods[0]["spec"], address(6));
    let status = helm_test.wait(Duration::from_secs(30));
    assert!(status.success(), "helm test failed:\n{}", helm_test.log());

    // A person with a token minted by `shadowsync credentials token` from the generated key.
    let key = out.join("jwt-signing-key.pem");
    let minter_bin = bin.join("shadowsync");
    let mint: Minter = Arc::new(move |identity: &Identity| {
        let mut command = Command::new(&minter_bin);
        command
            .args(["credentials", "token", "--key"])
            .arg(&key)
            .args(["--subject", &identity.subject, "--ttl", "1h"]);
        for role in &identity.roles {
            command.args(["--role", role]);
        }
        let output = command.output().expect("credentials token runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Secret::new(
            String::from_utf8(output.stdout)
                .expect("UTF-8")
                .trim()
                .to_string(),
        )
    });
    // Where the services themselves reach the task and approval services, with Service names
    // resolved as the cluster's DNS would.
    let in_cluster = |pod: &str, key: &str, service: &str| {
        let config = rendered.config_map(&format!("{RELEASE}-{pod}"));
        config[key].replace(
            &dns_name(service),
            &cluster.services[&dns_name(service)].to_string(),
        )
    };
    let url = |service: &str| match service {
        "task" => in_cluster("executor", "SHADOWSYNC_ENDPOINTS_TASK", "task"),
        _ => in_cluster("task", "SHADOWSYNC_ENDPOINTS_APPROVAL", "approval"),
    };
    assert!(url("task").starts_with("https://"), "TLS by default");
    let endpoints = Endpoints::with(
        url("task"),
        url("approval"),
        mint,
        Some(ClientTls {
            ca: Some(ca),
            ..ClientTls::default()
        }),
    );

    let db = MariaDb::create("ss_chart").await;
    db.exec(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(80) NOT NULL);\n\
         CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, \
           total DECIMAL(10,2), KEY by_customer (customer_id))",
    )
    .await;
    let mut team = Team::new(&endpoints).await;
    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
    team.alice
        .wait_status(id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "customers", "_test_customers").await;
    target::assert_in_sync(&db, "orders", "_test_orders").await;

    // Every pod serves Prometheus text on the port its Service names `metrics`.
    let metrics_port =
        chart::list(&rendered.get("Service", &format!("{RELEASE}-task"))["spec"]["ports"])
            .iter()
            .find(|p| text(p, &["name"]) == "metrics")
            .and_then(|p| p["port"].as_u64())
            .expect("a metrics port");
    for pod in &pods {
        let body = scrape(pod.ip, u16::try_from(metrics_port).expect("port")).await;
        assert!(body.contains("# TYPE "), "{}: {body}", pod.name);
        if pod.name.ends_with("-task") {
            assert!(
                body.contains("shadowsync_task_transitions_total"),
                "{}: {body}",
                pod.name
            );
        }
    }

    // Every service still runs, and logs in JSON as the chart asks.
    for pod in &mut pods {
        pod.assert_running();
        let log = pod.log();
        let first = log.lines().next().unwrap_or_default();
        assert!(first.starts_with('{'), "{}: not JSON: {first}", pod.name);
        assert!(!log.contains("BEGIN PRIVATE KEY"), "{}", pod.name);
    }
    for pod in &mut pods {
        pod.terminate(Duration::from_secs(30));
    }
    drop(pods);
    delete_topology(prefix);
}
