//! People signed in at the company's identity provider, through a real task server: a member of
//! the group mapped to `admin` may create a connection (an admin RPC), everyone else is refused,
//! whatever their token says about itself.

mod support;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use shadowsync_common::config::IdentityProviderConfig;
use shadowsync_common::secret::Secret;
use shadowsync_common::testing::identity_provider::{ATTACKER, IDP_A, JwksServer, jwks_of};
use shadowsync_proto::common::v1::Dialect;
use shadowsync_proto::task::v1::task_execution_service_client::TaskExecutionServiceClient;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::{AUDIENCE, Client, Services};
use tonic::Code;

const ISSUER: &str = "https://idp.test/realms/corp";

fn person(subject: &str, extra: serde_json::Value) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut claims = json!({
        "sub": subject, "iss": ISSUER, "aud": ["account", AUDIENCE], "iat": now, "exp": now + 300,
    });
    for (name, value) in extra.as_object().expect("object") {
        claims[name] = value.clone();
    }
    claims
}

fn channel(services: &Services) -> shadowsync_common::grpc::Channel {
    shadowsync_common::grpc::channel(&format!("http://{}", services.task_address), None)
        .expect("channel")
}

fn client(services: &Services, token: &str) -> Client {
    TaskServiceClient::new(
        shadowsync_common::grpc::authenticated(channel(services), &Secret::new(token.into()))
            .expect("auth"),
    )
}

fn create(name: &str) -> CreateConnectionRequest {
    CreateConnectionRequest {
        connection: Some(ConnectionSpec {
            name: name.into(),
            dialect: Dialect::Mariadb as i32,
            host: "127.0.0.1".into(),
            port: 3306,
            username: "root".into(),
            password: "unused".into(),
            environment: "test".into(),
            options: [("ssl-mode".to_string(), "DISABLED".to_string())].into(),
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn a_mapped_admin_may_call_an_admin_rpc_and_nobody_else_may() {
    let idp = JwksServer::start(&jwks_of(&[IDP_A.member()])).await;
    let services = Services::start_with_identity_provider(
        TaskConfig::default(),
        IdentityProviderConfig {
            jwks_url: idp.url(),
            issuer: ISSUER.into(),
            roles_claim: Some("groups".into()),
            role_map: BTreeMap::from([("platform-admins".into(), vec!["admin".into()])]),
        },
    )
    .await;

    let admin = IDP_A.sign(&person("dana", json!({"groups": ["platform-admins"]})));
    let created = client(&services, &admin)
        .create_connection(create("by-dana"))
        .await
        .expect("a mapped admin creates a connection")
        .into_inner();
    assert_eq!(created.connection.expect("connection").name, "by-dana");
    let listed = client(&services, &admin)
        .list_connections(ListConnectionsRequest::default())
        .await
        .expect("lists");
    assert_eq!(listed.into_inner().connections.len(), 1);

    let refusals = [
        // Signed in, but in no mapped group.
        (
            IDP_A.sign(&person("erin", json!({"groups": ["developers"]}))),
            Code::PermissionDenied,
        ),
        // Roles written into the token itself are not the roles claim.
        (
            IDP_A.sign(&person(
                "erin",
                json!({"roles": ["admin"], "groups": "developers"}),
            )),
            Code::PermissionDenied,
        ),
        // A service identity is never an identity provider's to give.
        (
            IDP_A.sign(&person(
                "svc:task",
                json!({"groups": ["platform-admins"], "roles": ["service"]}),
            )),
            Code::Unauthenticated,
        ),
        // The right group, signed by someone else.
        (
            ATTACKER.sign_as(
                &person("mallory", json!({"groups": ["platform-admins"]})),
                Some(&IDP_A.kid()),
            ),
            Code::Unauthenticated,
        ),
        // The right group, for another issuer.
        (
            IDP_A.sign(&person(
                "mallory",
                json!({"groups": ["platform-admins"], "iss": "https://elsewhere"}),
            )),
            Code::Unauthenticated,
        ),
    ];
    for (index, (token, code)) in refusals.into_iter().enumerate() {
        let status = client(&services, &token)
            .create_connection(create(&format!("refused-{index}")))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "case {index}: {status:?}");
    }

    // An identity provider's `svc:executor` cannot claim work either.
    let executor = IDP_A.sign(&person(
        "svc:executor",
        json!({"groups": ["platform-admins"]}),
    ));
    let mut execution = TaskExecutionServiceClient::new(
        shadowsync_common::grpc::authenticated(channel(&services), &Secret::new(executor))
            .expect("auth"),
    );
    let status = execution
        .claim_execution(ClaimExecutionRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(idp.requests(), 1, "one fetch served every token");
}
