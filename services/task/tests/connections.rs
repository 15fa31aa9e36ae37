//! Connections through real tonic servers: admin checks, unique names, passwords encrypted at
//! rest and absent from every response and every log line, `TestConnection` against MariaDB.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use shadowsync_proto::common::v1::Dialect;
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use sqlx::Row;
use support::{MariaDb, Services};
use tonic::Code;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
    }
}

fn spec(name: &str, user: &str, password: &str) -> ConnectionSpec {
    ConnectionSpec {
        name: name.into(),
        dialect: Dialect::Mariadb as i32,
        host: "127.0.0.1".into(),
        port: 3306,
        username: user.into(),
        password: password.into(),
        environment: "test".into(),
        options: [("ssl-mode".to_string(), "DISABLED".to_string())].into(),
    }
}

/// Everything runs on this one thread, so the thread-local subscriber sees the servers' logs
/// too (tonic, sqlx and the task service, at TRACE).
#[tokio::test(flavor = "current_thread")]
async fn passwords_are_sealed_never_returned_and_never_logged() {
    // The test's own `CREATE USER … IDENTIFIED BY` runs before the capture starts: only the
    // services' logs are under test.
    let target = MariaDb::empty().await.with_user().await;
    let (user, password) = target.user.clone().expect("user");
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut alice = services.client("alice", &[]).await;
    let mut responses: Vec<String> = Vec::new();

    let created = admin
        .create_connection(CreateConnectionRequest {
            connection: Some(spec("main", &user, &password)),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner();
    responses.push(format!("{created:?}"));
    let connection = created.connection.expect("connection");
    assert!(connection.password_set);
    assert_eq!(connection.environment, "test");

    // At rest: nonce || ciphertext || tag, never the password.
    let row = sqlx::query("SELECT password_ciphertext FROM connections WHERE id = $1")
        .bind(&connection.id)
        .fetch_one(services.db.pool())
        .await
        .expect("row");
    let stored: Vec<u8> = row.try_get(0).expect("ciphertext");
    assert_eq!(stored.len(), 12 + password.len() + 16);
    assert!(
        !stored
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );

    // Same name: ALREADY_EXISTS; non-admins: PERMISSION_DENIED.
    let clash = admin
        .create_connection(CreateConnectionRequest {
            connection: Some(spec("main", &user, &password)),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(clash.code(), Code::AlreadyExists);
    // The same create retried with its request id returns the first result.
    let keyed = CreateConnectionRequest {
        connection: Some(spec("keyed", &user, &password)),
        request_id: "create-1".into(),
    };
    let first = admin
        .create_connection(keyed.clone())
        .await
        .expect("first")
        .into_inner();
    let again = admin
        .create_connection(keyed)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(
        first.connection.unwrap().id,
        again.connection.as_ref().unwrap().id
    );
    admin
        .delete_connection(DeleteConnectionRequest {
            connection_id: again.connection.unwrap().id,
        })
        .await
        .expect("delete keyed");
    let denied = alice
        .create_connection(CreateConnectionRequest {
            connection: Some(spec("other", &user, &password)),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let invalid = admin
        .create_connection(CreateConnectionRequest {
            connection: Some(ConnectionSpec {
                environment: "Prod!".into(),
                ..spec("x", &user, &password)
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(invalid.message().starts_with("connection.environment"));

    // Any user lists and reads; nobody gets the password back.
    let listed = alice
        .list_connections(ListConnectionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.total_size, 1);
    responses.push(format!("{listed:?}"));
    let got = alice
        .get_connection(GetConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    responses.push(format!("{got:?}"));

    // TestConnection: admin only; the stored password works, a wrong one reports 1045.
    let denied = alice
        .test_connection(TestConnectionRequest {
            target: Some(test_connection_request::Target::ConnectionId(
                connection.id.clone(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let tested = admin
        .test_connection(TestConnectionRequest {
            target: Some(test_connection_request::Target::ConnectionId(
                connection.id.clone(),
            )),
        })
        .await
        .expect("test")
        .into_inner();
    assert!(tested.ok, "{tested:?}");
    assert!(tested.server_version.contains("MariaDB"), "{tested:?}");
    responses.push(format!("{tested:?}"));
    let wrong_password = format!("{password}-wrong");
    let refused = admin
        .test_connection(TestConnectionRequest {
            target: Some(test_connection_request::Target::Spec(spec(
                "unsaved",
                &user,
                &wrong_password,
            ))),
        })
        .await
        .expect("test")
        .into_inner();
    assert!(!refused.ok);
    assert_eq!(refused.error_code, "1045", "{refused:?}");
    assert!(!refused.error_message.contains(&wrong_password));
    responses.push(format!("{refused:?}"));
    let unreachable = admin
        .test_connection(TestConnectionRequest {
            target: Some(test_connection_request::Target::Spec(ConnectionSpec {
                port: 1,
                ..spec("nowhere", &user, &password)
            })),
        })
        .await
        .expect("test")
        .into_inner();
    assert_eq!(
        (unreachable.ok, unreachable.error_code.as_str()),
        (false, "connect")
    );

    // Rotation: the new password is sealed too; an empty one removes it.
    let rotated_password = format!("{password}-rotated");
    let updated = admin
        .update_connection(UpdateConnectionRequest {
            connection_id: connection.id.clone(),
            password: Some(rotated_password.clone()),
            name: Some("renamed".into()),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    responses.push(format!("{updated:?}"));
    assert_eq!(updated.connection.as_ref().unwrap().name, "renamed");
    let cleared = admin
        .update_connection(UpdateConnectionRequest {
            connection_id: connection.id.clone(),
            password: Some(String::new()),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    assert!(!cleared.connection.unwrap().password_set);

    // A retried update is answered once; its request id with other fields is refused.
    let retried = || UpdateConnectionRequest {
        connection_id: connection.id.clone(),
        environment: Some("test".into()),
        request_id: "update-1".into(),
        ..Default::default()
    };
    for _ in 0..2 {
        let again = admin
            .update_connection(retried())
            .await
            .expect("retry")
            .into_inner();
        assert_eq!(again.connection.unwrap().environment, "test");
    }
    let reused = admin
        .update_connection(UpdateConnectionRequest {
            environment: Some("prod".into()),
            ..retried()
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert!(
        reused.message().starts_with("request_id"),
        "{}",
        reused.message()
    );

    for response in &responses {
        assert!(
            !response.contains(&password),
            "a response holds the password: {response}"
        );
        assert!(!response.contains(&rotated_password));
    }
    let logs = capture.text();
    assert!(logs.contains("connection created"), "the capture works");
    assert!(logs.contains("connection tested"));
    for secret in [&password, &wrong_password, &rotated_password] {
        assert!(
            !logs.contains(secret.as_str()),
            "a log line holds a password"
        );
    }

    // Delete: admin only; refused while unfinished tasks use the connection (their rows are
    // inserted directly here), then done, then NOT_FOUND.
    let mut tasks = Vec::new();
    for status in ["APPROVING", "EXECUTING", "EXECUTION_SUCCEEDED"] {
        let id: i64 = sqlx::query(
            "INSERT INTO tasks (analysis_id, connection_id, database_name, status, creator, \
             created_at, updated_at) VALUES ($3, $1, 'shop', $2, 'alice', 1, 1) RETURNING id",
        )
        .bind(connection.id.clone())
        .bind(status)
        .bind(format!("analysis-{status}"))
        .fetch_one(services.db.pool())
        .await
        .expect("task")
        .try_get(0)
        .expect("id");
        tasks.push(id);
    }
    let in_use = admin
        .delete_connection(DeleteConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(in_use.code(), Code::FailedPrecondition);
    assert!(
        in_use.message().contains("2 unfinished tasks"),
        "{}",
        in_use.message()
    );
    alice
        .get_connection(GetConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .expect("still there");
    sqlx::query("UPDATE tasks SET status = 'CANCELLED' WHERE id = $1 OR id = $2")
        .bind(tasks[0])
        .bind(tasks[1])
        .execute(services.db.pool())
        .await
        .expect("finish tasks");
    let denied = alice
        .delete_connection(DeleteConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    admin
        .delete_connection(DeleteConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .expect("delete");
    let gone = alice
        .get_connection(GetConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    target.drop_all().await;
}

/// Options are checked by value, not only by name, on every path that takes them: an unknown
/// TLS mode is refused naming the option, never probed or stored as a weaker default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_option_values_are_refused_naming_the_option() {
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    for (option, value) in [
        ("ssl-mode", "sometimes"),
        ("connect-timeout", "soon"),
        ("connect-timeout", "0s"),
    ] {
        let mut invalid = spec("weak", "root", "");
        invalid.options = [(option.to_string(), value.to_string())].into();
        let created = admin
            .create_connection(CreateConnectionRequest {
                connection: Some(invalid.clone()),
                request_id: String::new(),
            })
            .await
            .expect_err("create refused");
        assert_eq!(created.code(), Code::InvalidArgument, "{created:?}");
        assert!(
            created
                .message()
                .starts_with(&format!("connection.options.{option}")),
            "{created:?}"
        );
        let tested = admin
            .test_connection(TestConnectionRequest {
                target: Some(test_connection_request::Target::Spec(invalid)),
            })
            .await
            .expect_err("test refused");
        assert_eq!(tested.code(), Code::InvalidArgument, "{tested:?}");
        assert!(tested.message().contains(option), "{tested:?}");
    }
    let listed = admin
        .list_connections(ListConnectionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.connections.is_empty(), "nothing was stored");
}
