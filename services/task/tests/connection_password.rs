//! The stored password only goes where it was entered: an update that
//! changes where or how a connection logs in needs the password again, and no probe ever sends a
//! password in clear, even to a server that asks for `mysql_clear_password` over plain TCP.

mod support;

use shadowsync_common::testing::{CleartextAsk, FakeMySql};
use shadowsync_proto::common::v1::Dialect;
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::{Client, Services};
use tonic::Code;

const PASSWORD: &str = "stored-Secret-9f2c";

fn spec(port: u16, password: &str) -> ConnectionSpec {
    ConnectionSpec {
        name: "prod".into(),
        dialect: Dialect::Mariadb as i32,
        host: "127.0.0.1".into(),
        port: u32::from(port),
        username: "app".into(),
        password: password.into(),
        environment: "prod".into(),
        options: [("ssl-mode".to_string(), "DISABLED".to_string())].into(),
    }
}

async fn create(admin: &mut Client, spec: ConnectionSpec) -> String {
    admin
        .create_connection(CreateConnectionRequest {
            connection: Some(spec),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .connection
        .expect("connection")
        .id
}

async fn probe(admin: &mut Client, id: &str) -> TestConnectionResponse {
    admin
        .test_connection(TestConnectionRequest {
            target: Some(test_connection_request::Target::ConnectionId(id.into())),
        })
        .await
        .expect("test")
        .into_inner()
}

fn update(id: &str) -> UpdateConnectionRequest {
    UpdateConnectionRequest {
        connection_id: id.into(),
        ..Default::default()
    }
}

fn assert_needs_password(
    result: Result<tonic::Response<UpdateConnectionResponse>, tonic::Status>,
    what: &str,
) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert!(
        status.message().starts_with("password"),
        "{what}: {}",
        status.message()
    );
}

#[tokio::test]
async fn moving_a_connection_needs_its_password_again() {
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    let id = create(&mut admin, spec(3306, PASSWORD)).await;

    // Every field that changes where or how the password is sent.
    let attempts = [
        (
            "host",
            UpdateConnectionRequest {
                host: Some("203.0.113.7".into()),
                ..update(&id)
            },
        ),
        (
            "port",
            UpdateConnectionRequest {
                port: Some(3307),
                ..update(&id)
            },
        ),
        (
            "username",
            UpdateConnectionRequest {
                username: Some("other".into()),
                ..update(&id)
            },
        ),
        (
            "dialect",
            UpdateConnectionRequest {
                dialect: Some(Dialect::Mysql as i32),
                ..update(&id)
            },
        ),
        (
            "ssl-mode",
            UpdateConnectionRequest {
                replace_options: true,
                options: [("ssl-mode".to_string(), "PREFERRED".to_string())].into(),
                ..update(&id)
            },
        ),
        (
            "options cleared",
            UpdateConnectionRequest {
                replace_options: true,
                ..update(&id)
            },
        ),
        // A harmless field does not smuggle a move through.
        (
            "host with a new name",
            UpdateConnectionRequest {
                name: Some("renamed".into()),
                host: Some("evil.example".into()),
                ..update(&id)
            },
        ),
    ];
    for (what, request) in attempts {
        assert_needs_password(admin.update_connection(request).await, what);
    }
    let unchanged = admin
        .get_connection(GetConnectionRequest {
            connection_id: id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(unchanged.connection.as_ref().unwrap().host, "127.0.0.1");
    assert_eq!(unchanged.connection.as_ref().unwrap().name, "prod");

    // Labels keep the stored password, and so do fields sent back with their current values.
    let relabelled = admin
        .update_connection(UpdateConnectionRequest {
            name: Some("prod-eu".into()),
            environment: Some("staging".into()),
            host: Some("127.0.0.1".into()),
            port: Some(3306),
            replace_options: true,
            options: [
                ("ssl-mode".to_string(), "DISABLED".to_string()),
                ("connect-timeout".to_string(), "5s".to_string()),
            ]
            .into(),
            ..update(&id)
        })
        .await
        .expect("labels")
        .into_inner()
        .connection
        .expect("connection");
    assert!(relabelled.password_set);
    assert_eq!(relabelled.name, "prod-eu");

    // With the password the move goes through.
    let moved = admin
        .update_connection(UpdateConnectionRequest {
            host: Some("db2.internal".into()),
            password: Some("new-password".into()),
            ..update(&id)
        })
        .await
        .expect("move with password")
        .into_inner()
        .connection
        .expect("connection");
    assert_eq!(moved.host, "db2.internal");
}

/// A server that wants the password under a key it sends, over plain text, never gets it: the
/// probe does not even ask for the key.
#[tokio::test]
async fn no_probe_sends_a_password_under_the_servers_own_key() {
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    let fake = FakeMySql::start(CleartextAsk::FullAuth).await;
    let response = admin
        .test_connection(TestConnectionRequest {
            target: Some(test_connection_request::Target::Spec(spec(
                fake.addr.port(),
                PASSWORD,
            ))),
        })
        .await
        .expect("test")
        .into_inner();
    assert!(!response.ok, "{response:?}");
    // Only the handshake response: no request for the public key followed.
    assert_eq!(
        fake.packets(),
        1,
        "the client went on: {:?}",
        fake.received()
    );
    assert!(
        response.error_message.contains("unencrypted"),
        "{response:?}"
    );
}

/// An admin who cannot move the stored password tries the next thing: a server of their own that
/// asks for it in clear. The probe must refuse, with an error that says why.
#[tokio::test]
async fn no_probe_sends_a_password_in_clear() {
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    for ask in [CleartextAsk::AuthSwitch, CleartextAsk::Greeting] {
        let fake = FakeMySql::start(ask).await;
        let secret = format!("{PASSWORD}-{ask:?}");
        let id = create(
            &mut admin,
            ConnectionSpec {
                name: format!("fake-{ask:?}").to_lowercase(),
                ..spec(fake.addr.port(), &secret)
            },
        )
        .await;
        let stored = probe(&mut admin, &id).await;
        let unsaved = admin
            .test_connection(TestConnectionRequest {
                target: Some(test_connection_request::Target::Spec(spec(
                    fake.addr.port(),
                    &secret,
                ))),
            })
            .await
            .expect("test spec")
            .into_inner();
        // Through a switch the client gets as far as its first answer; a greeting that asks is
        // refused before the client says anything.
        if let CleartextAsk::AuthSwitch = ask {
            assert!(
                !fake.received().is_empty(),
                "{ask:?}: the client never answered"
            );
        }
        assert!(
            !fake.saw(&secret),
            "{ask:?}: the password went out in clear"
        );
        for response in [stored, unsaved] {
            assert!(!response.ok, "{ask:?}: {response:?}");
            assert!(
                response.error_message.contains("cleartext"),
                "{ask:?}: the error does not say why: {response:?}"
            );
        }
    }
}

/// Behind the gate, an unreachable server is still a network failure with its reason.
#[tokio::test]
async fn an_unreachable_server_is_still_a_connect_error() {
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let response = admin
        .test_connection(TestConnectionRequest {
            target: Some(test_connection_request::Target::Spec(spec(closed, "pw"))),
        })
        .await
        .expect("test")
        .into_inner();
    assert!(!response.ok);
    assert_eq!(response.error_code, "connect", "{response:?}");
    assert!(
        response.error_message.to_lowercase().contains("refused"),
        "{response:?}"
    );
}
