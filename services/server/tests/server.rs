//! The server through real tonic servers on 127.0.0.1:0: identity at the door, health without a
//! token, reflection, TLS, and configuration errors at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use shadowsync_common::auth::{Identity, TokenIssuer};
use shadowsync_common::config::{Config, ConfigLoader};
use shadowsync_common::grpc::{self, ClientTls};
use shadowsync_common::secret::Secret;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_proto::task::v1::{GetIdentityRequest, ListConnectionsRequest};
use shadowsync_server::{Role, run};
use tokio::sync::oneshot;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SECRET: &str = "test-secret-test-secret-test-secret";

struct TestServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(role: Role, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = format!("data_dir={}", dir.path().display());
        let secret = format!("auth.hs256_secret={SECRET}");
        let mut flags = vec![
            "listen=127.0.0.1:0",
            data_dir.as_str(),
            secret.as_str(),
            "encryption.key=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ];
        flags.extend_from_slice(extra);
        let config: Config = ConfigLoader::new().flags(flags).load().expect("config");
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            run(role, config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            address,
            stop: Some(stop),
            handle,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.handle)
            .await
            .expect("graceful shutdown finishes")
            .expect("server task");
    }
}

fn token(identity: &Identity) -> Secret<String> {
    TokenIssuer::hs256(&Secret::new(SECRET.to_string()), "shadowsync")
        .issue(identity, Duration::from_secs(300))
}

async fn wait_serving(channel: shadowsync_common::grpc::Channel, service: &str) {
    let mut health = HealthClient::new(channel);
    for _ in 0..100 {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await;
        if let Ok(response) = response
            && response.into_inner().status == ServingStatus::Serving as i32
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service:?} never became SERVING");
}

#[tokio::test]
async fn identity_is_checked_on_every_rpc_but_health() {
    let server = TestServer::start(Role::All, &[]).await;
    let channel = grpc::channel(&server.url(), None).expect("channel");

    // Health needs no token, and reports every service.
    wait_serving(channel.clone(), "").await;
    for service in shadowsync_proto::SERVICE_NAMES {
        wait_serving(channel.clone(), service).await;
    }

    let request = || ListConnectionsRequest::default();
    let status = TaskServiceClient::new(channel.clone())
        .list_connections(request())
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let issuer = TokenIssuer::hs256(&Secret::new(SECRET.to_string()), "shadowsync");
    let expired = issuer.issue_at(&Identity::user("alice", &[]), 1_000, 2_000);
    let forged = TokenIssuer::hs256(
        &Secret::new("another-secret-another-secret-xx".into()),
        "shadowsync",
    )
    .issue(
        &Identity::user("alice", &["admin"]),
        Duration::from_secs(60),
    );
    for bad in [expired, forged, Secret::new("garbage".to_string())] {
        let authed = grpc::authenticated(channel.clone(), &bad).expect("header");
        let status = TaskServiceClient::new(authed)
            .list_connections(request())
            .await
            .expect_err("bad token");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }

    // A good token passes the door and reaches the handler, which sees the caller.
    let authed = grpc::authenticated(channel.clone(), &token(&Identity::user("alice", &["dev"])))
        .expect("header");
    let mut client = TaskServiceClient::new(authed);
    let caller = client
        .get_identity(GetIdentityRequest {})
        .await
        .expect("identity")
        .into_inner();
    let actor = caller.caller.expect("caller");
    assert_eq!(
        (actor.subject.as_str(), actor.roles.as_slice()),
        ("alice", &["dev".to_string()][..])
    );
    assert!(!caller.admin);
    assert!(caller.token_expire_time.is_some());
    // The task service's own handlers run for the same caller.
    let connections = client
        .list_connections(request())
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(connections.total_size, 0);

    server.stop().await;
}

#[tokio::test]
async fn reflection_lists_every_service_to_an_authenticated_caller() {
    use tokio_stream::StreamExt as _;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start(Role::All, &[]).await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    let list = || {
        tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };

    let status = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(list())
        .await
        .expect_err("reflection needs a token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let authed = grpc::authenticated(channel, &token(&Identity::user("bob", &[]))).expect("header");
    let mut responses = ServerReflectionClient::new(authed)
        .server_reflection_info(list())
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(services)) = response.message_response else {
        panic!("unexpected reflection response: {response:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    for expected in shadowsync_proto::SERVICE_NAMES {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn each_role_serves_only_its_own_services() {
    let server = TestServer::start(Role::Approval, &[]).await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    wait_serving(channel.clone(), shadowsync_proto::APPROVAL_SERVICE).await;
    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: shadowsync_proto::TASK_SERVICE.into(),
        })
        .await
        .expect_err("task is not served here");
    assert_eq!(status.code(), Code::NotFound);

    let authed =
        grpc::authenticated(channel, &token(&Identity::user("alice", &[]))).expect("header");
    let status = TaskServiceClient::new(authed)
        .list_connections(ListConnectionsRequest::default())
        .await
        .expect_err("no task service in the approval role");
    assert_eq!(status.code(), Code::Unimplemented);
    server.stop().await;
}

#[tokio::test]
async fn health_is_not_serving_while_a_dependency_is_down() {
    // Nothing listens on port 1: the broker is "down".
    let server = TestServer::start(
        Role::Approval,
        &["queue.url=amqp://guest:guest@127.0.0.1:1/%2f"],
    )
    .await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers");
    assert_eq!(
        response.into_inner().status,
        ServingStatus::NotServing as i32
    );
    server.stop().await;
}

/// The serving status of every service the process runs.
async fn health_of(channel: shadowsync_common::grpc::Channel) -> i32 {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

#[tokio::test]
async fn the_task_service_stays_ready_while_the_broker_is_down() {
    // Its API works without the broker (events wait in the outbox), so a broker outage must not
    // take it out of a readiness-probed Service. Nothing listens on port 1.
    let store = shadowsync_common::testing::TestDatabase::postgres().await;
    let database = format!("database.url={}", store.url);
    let server = TestServer::start(
        Role::Task,
        &[
            &database,
            "queue.url=amqp://guest:guest@127.0.0.1:1/%2f",
            "endpoints.analysis=http://127.0.0.1:9",
            "endpoints.approval=http://127.0.0.1:9",
        ],
    )
    .await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    wait_serving(channel.clone(), shadowsync_proto::TASK_SERVICE).await;
    let authed =
        grpc::authenticated(channel, &token(&Identity::user("alice", &[]))).expect("header");
    TaskServiceClient::new(authed)
        .list_connections(ListConnectionsRequest::default())
        .await
        .expect("the API answers");
    server.stop().await;
}

#[tokio::test]
async fn health_follows_a_store_outage_within_seconds() {
    let store = shadowsync_common::testing::TestDatabase::postgres().await;
    let (_, rest) = store.url.split_once("://").expect("scheme");
    let (authority, path) = rest.split_once('/').expect("path");
    let (user, host) = authority.rsplit_once('@').expect("user");
    let target = tokio::net::lookup_host(host)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let mut proxy = shadowsync_common::testing::TcpProxy::start(target).await;
    let database = format!("database.url=postgres://{user}@{}/{path}", proxy.address());
    let server = TestServer::start(
        Role::Task,
        &[
            &database,
            "queue.url=amqp://guest:guest@127.0.0.1:1/%2f",
            "endpoints.analysis=http://127.0.0.1:9",
            "endpoints.approval=http://127.0.0.1:9",
        ],
    )
    .await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    wait_serving(channel.clone(), "").await;

    proxy.cut().await;
    let cut = std::time::Instant::now();
    while health_of(channel.clone()).await != ServingStatus::NotServing as i32 {
        assert!(
            cut.elapsed() < Duration::from_secs(5),
            "still SERVING 5 s into the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();
    let back = std::time::Instant::now();
    while health_of(channel.clone()).await != ServingStatus::Serving as i32 {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not SERVING 10 s after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn calls_before_the_store_is_migrated_are_unavailable_not_internal() {
    // Nothing listens on port 1: the task store cannot be migrated, so the service never
    // finishes starting; an authenticated call must get a retryable UNAVAILABLE.
    let server = TestServer::start(
        Role::Task,
        &[
            "database.url=postgres://postgres@127.0.0.1:1/nowhere",
            "endpoints.analysis=http://127.0.0.1:9",
            "endpoints.approval=http://127.0.0.1:9",
        ],
    )
    .await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    let issuer = TokenIssuer::hs256(&Secret::new(SECRET.to_string()), "shadowsync");
    let token = issuer.issue(&Identity::user("alice", &[]), Duration::from_secs(60));
    let mut client = TaskServiceClient::new(grpc::authenticated(channel, &token).expect("header"));
    let mut last = None;
    for _ in 0..50 {
        match client
            .list_connections(ListConnectionsRequest::default())
            .await
        {
            Err(status) if status.code() == Code::Unavailable => {
                last = Some(status);
                break;
            }
            // The transport may not accept calls for a moment after binding.
            other => last = other.err(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = last.expect("the call failed");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("not ready"), "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn production_dependencies_make_a_service_serving() {
    let store = shadowsync_common::testing::TestDatabase::postgres().await;
    let database = format!("database.url={}", store.url);
    let unique = format!("test-{}.", uuid::Uuid::new_v4().simple());
    let prefix = format!("queue.prefix={unique}");
    let server = TestServer::start(
        Role::Approval,
        &[
            &database,
            "queue.url=amqp://guest:guest@127.0.0.1:5672/%2f",
            &prefix,
        ],
    )
    .await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    wait_serving(channel, shadowsync_proto::APPROVAL_SERVICE).await;
    server.stop().await;
    // The shared broker keeps nothing of this test.
    use shadowsync_common::queue::{AmqpQueue, AmqpQueueOptions, Topology};
    AmqpQueue::new(AmqpQueueOptions::new(
        "amqp://guest:guest@127.0.0.1:5672/%2f".to_string(),
        Topology::new(unique),
    ))
    .expect("queue")
    .delete_topology()
    .await
    .expect("clean up");
}

#[tokio::test]
async fn an_executor_needs_to_know_where_the_task_service_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = format!("data_dir={}", dir.path().display());
    let secret = format!("auth.hs256_secret={SECRET}");
    let config: Config = ConfigLoader::new()
        .flags(["listen=127.0.0.1:0", data_dir.as_str(), secret.as_str()])
        .load()
        .expect("config");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind");
    let error = run(Role::Executor, config, listener, async {})
        .await
        .expect_err("no task endpoint");
    assert!(error.to_string().contains("endpoints.task"), "{error}");

    let server = TestServer::start(Role::Executor, &["endpoints.task=http://127.0.0.1:9"]).await;
    let channel = grpc::channel(&server.url(), None).expect("channel");
    wait_serving(channel, "").await;
    server.stop().await;
}

#[tokio::test]
async fn grpc_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = tls_support::Pki::generate();
    let path = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write pem");
        path.display().to_string()
    };
    let cert = format!("tls.cert={}", path("server.pem", &pki.server_cert));
    let key = format!("tls.key={}", path("server.key", &pki.server_key));
    let ca = format!("tls.client_ca={}", path("ca.pem", &pki.ca_cert));
    let server = TestServer::start(Role::All, &[&cert, &key, &ca]).await;
    let url = format!("https://localhost:{}", server.address.port());

    let with_identity = ClientTls {
        ca: Some(pki.ca_cert.clone().into_bytes()),
        identity: Some((
            pki.client_cert.clone().into_bytes(),
            pki.client_key.clone().into_bytes(),
        )),
        domain: Some("localhost".into()),
    };
    let channel = grpc::channel(&url, Some(&with_identity)).expect("channel");
    wait_serving(channel, "").await;

    // Without a client certificate the handshake is refused.
    let anonymous = ClientTls {
        identity: None,
        ..with_identity
    };
    let channel = grpc::channel(&url, Some(&anonymous)).expect("channel");
    let result = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(
        result.is_err(),
        "a client without a certificate must be refused"
    );
    server.stop().await;
}

/// kubelet's gRPC probes cannot speak TLS: `health.listen` serves health, and nothing else, in
/// plaintext beside the TLS port.
#[tokio::test]
async fn health_alone_is_served_in_plaintext_on_the_health_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = tls_support::Pki::generate();
    let path = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write pem");
        path.display().to_string()
    };
    let cert = format!("tls.cert={}", path("server.pem", &pki.server_cert));
    let key = format!("tls.key={}", path("server.key", &pki.server_key));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let health_listen = format!("health.listen=127.0.0.1:{port}");
    let server = TestServer::start(Role::All, &[&cert, &key, &health_listen]).await;

    let health = grpc::channel(&format!("http://127.0.0.1:{port}"), None).expect("channel");
    wait_serving(health.clone(), "").await;
    wait_serving(health.clone(), "shadowsync.task.v1.TaskService").await;
    // Only health: the API stays behind TLS.
    let token = token(&Identity::user("alice", &["admin"]));
    let mut task = TaskServiceClient::new(grpc::authenticated(health, &token).expect("token"));
    let status = task
        .get_identity(GetIdentityRequest {})
        .await
        .expect_err("not served here");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    // And the main port is TLS only.
    let plaintext = grpc::channel(&server.url(), None).expect("channel");
    let result = HealthClient::new(plaintext)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(result.is_err(), "plaintext on the TLS port must fail");
    server.stop().await;
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shadowsync"))
        .args(["serve", "all", "--data-dir"])
        .arg(dir.path())
        .env("SHADOWSYNC_LISTEN", "not-an-address")
        .output()
        .expect("run shadowsync");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`listen`") && stderr.contains("SHADOWSYNC_LISTEN"),
        "{stderr}"
    );
}

mod tls_support;

#[test]
fn the_binary_serves_embedded_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shadowsync"))
        .args(["serve", "all", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("SHADOWSYNC_DATABASE_URL")
        .env_remove("SHADOWSYNC_QUEUE_URL")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shadowsync");
    let endpoint_file = dir.path().join(shadowsync_server::embedded::ENDPOINT_FILE);
    let mut endpoint = String::new();
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&endpoint_file) {
            endpoint = text.trim().to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "no endpoint written: {endpoint:?}"
    );
    let token = std::fs::read_to_string(
        dir.path()
            .join(shadowsync_server::embedded::ADMIN_TOKEN_FILE),
    )
    .expect("admin token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(
            dir.path()
                .join(shadowsync_server::embedded::ADMIN_TOKEN_FILE),
        )
        .expect("token metadata")
        .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let channel = grpc::channel(&endpoint, None).expect("channel");
        wait_serving(channel.clone(), "").await;
        let authed =
            grpc::authenticated(channel, &Secret::new(token.trim().to_string())).expect("header");
        let me = TaskServiceClient::new(authed)
            .get_identity(GetIdentityRequest {})
            .await
            .expect("identity")
            .into_inner();
        assert!(me.admin);
    });

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("shadowsync did not stop within 5 s of SIGTERM");
}

/// A second `serve all` on a data directory in use exits at once, naming the running server's
/// PID and endpoint, and leaves the files `shadowctl` reads as they were: the first server stays
/// usable.
#[test]
fn a_second_embedded_server_leaves_the_first_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shadowsync"));
        command
            .args(["serve", "all", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env_remove("SHADOWSYNC_DATABASE_URL")
            .env_remove("SHADOWSYNC_QUEUE_URL");
        command
    };
    let mut first = serve()
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shadowsync");
    let endpoint_file = dir.path().join(shadowsync_server::embedded::ENDPOINT_FILE);
    let token_file = dir
        .path()
        .join(shadowsync_server::embedded::ADMIN_TOKEN_FILE);
    let mut endpoint = String::new();
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&endpoint_file) {
            endpoint = text.trim().to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!endpoint.is_empty(), "the first server wrote no endpoint");
    let token = std::fs::read_to_string(&token_file).expect("admin token");

    let started = std::time::Instant::now();
    let second = serve().output().expect("run a second shadowsync");
    assert!(!second.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the second server must exit at once"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("PID {}", first.id())) && stderr.contains(&endpoint),
        "names the running server's PID and endpoint: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&endpoint_file)
            .expect("endpoint")
            .trim(),
        endpoint
    );
    assert_eq!(
        std::fs::read_to_string(&token_file).expect("token"),
        token,
        "the admin token is untouched"
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let channel = grpc::channel(&endpoint, None).expect("channel");
        wait_serving(channel.clone(), "").await;
        let authed =
            grpc::authenticated(channel, &Secret::new(token.trim().to_string())).expect("header");
        let me = TaskServiceClient::new(authed)
            .get_identity(GetIdentityRequest {})
            .await
            .expect("the first server still answers with its token")
            .into_inner();
        assert!(me.admin);
    });
    let _ = first.kill();
    let _ = first.wait();
}
