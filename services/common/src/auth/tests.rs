use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::service::Interceptor as _;

use super::verify::{Audience, Claims};
use super::*;
use crate::config::AuthConfig;
use crate::secret::Secret;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn config(secret: &str) -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(Secret::new(secret.to_string())),
        rs256_public_keys: Vec::new(),
        audience: "shadowsync".into(),
        service_token: None,
        ..AuthConfig::default()
    }
}

fn authenticator() -> Authenticator {
    Authenticator::from_config(&config(SECRET)).expect("authenticator")
}

fn issuer() -> TokenIssuer {
    TokenIssuer::hs256(&Secret::new(SECRET.to_string()), "shadowsync")
}

#[tokio::test]
async fn a_good_token_yields_its_identity() {
    let token = issuer().issue(&Identity::user("alice", &["dev"]), Duration::from_secs(60));
    let identity = authenticator().verify(token.expose()).await.expect("valid");
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.roles, ["dev"]);
    assert!(identity.expires_at.is_some_and(|exp| exp > 0));
}

#[tokio::test]
async fn expired_wrongly_signed_and_foreign_audience_tokens_are_refused() {
    let alice = Identity::user("alice", &[]);
    let expired = issuer().issue_at(&alice, 1_000, 2_000);
    let error = authenticator()
        .verify(expired.expose())
        .await
        .expect_err("expired");
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    assert_eq!(error.message(), "token expired");

    let other = TokenIssuer::hs256(&Secret::new("x".repeat(32)), "shadowsync")
        .issue(&alice, Duration::from_secs(60));
    let error = authenticator()
        .verify(other.expose())
        .await
        .expect_err("wrong key");
    assert_eq!(error.message(), "invalid token signature");

    let foreign = TokenIssuer::hs256(&Secret::new(SECRET.to_string()), "elsewhere")
        .issue(&alice, Duration::from_secs(60));
    let error = authenticator()
        .verify(foreign.expose())
        .await
        .expect_err("audience");
    assert_eq!(error.message(), "token audience not accepted");

    assert!(authenticator().verify("not.a.jwt").await.is_err());
}

/// What the server's layer makes of a client's request: the identity it proves.
async fn authenticate(layer: &AuthLayer, request: Request<()>) -> Result<Identity, Status> {
    layer
        .authenticate(&request.metadata().clone().into_headers())
        .await
}

#[tokio::test]
async fn the_layer_demands_a_bearer_header() {
    let layer = AuthLayer::new(Arc::new(authenticator()));
    let error = authenticate(&layer, Request::new(()))
        .await
        .expect_err("missing");
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    assert_eq!(error.message(), "missing authorization: Bearer <token>");

    let mut basic = Request::new(());
    basic.metadata_mut().insert(
        "authorization",
        "Basic YWxpY2U6cHc=".parse().expect("ascii"),
    );
    let error = authenticate(&layer, basic).await.expect_err("not bearer");
    assert_eq!(error.message(), "authorization must be `Bearer <token>`");

    let token = issuer().issue(&Identity::user("bob", &["admin"]), Duration::from_secs(60));
    let mut bearer = BearerToken::new(&token).expect("ascii");
    let request = bearer.call(Request::new(())).expect("adds header");
    let identity = authenticate(&layer, request).await.expect("verified");
    assert!(identity.is_admin());
    assert!(
        identity
            .require_service(&[ServiceIdentity::Executor])
            .is_err()
    );
}

/// A stand-in gRPC service: answers with the subject the layer put in the request.
#[derive(Clone)]
struct Echo;

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "shadowsync.test.v1.Echo";
}

impl tower::Service<http::Request<()>> for Echo {
    type Response = http::Response<String>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<()>) -> Self::Future {
        let subject = request
            .extensions()
            .get::<Identity>()
            .map(|identity| identity.subject.clone())
            .unwrap_or_default();
        std::future::ready(Ok(http::Response::new(subject)))
    }
}

fn grpc_status(response: &http::Response<String>) -> Option<&str> {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn the_wrapped_service_keeps_its_name_and_sees_only_verified_callers() {
    use tonic::server::NamedService as _;
    use tower::{Layer as _, ServiceExt as _};

    assert_eq!(
        <Authenticated<Echo> as tonic::server::NamedService>::NAME,
        Echo::NAME
    );
    let (started, ready) = tokio::sync::watch::channel(false);
    let service = AuthLayer::new(Arc::new(authenticator()))
        .gated(ready)
        .layer(Echo);
    let token = issuer().issue(&Identity::user("carol", &[]), Duration::from_secs(60));
    let request = |token: Option<&str>| {
        let mut request = http::Request::new(());
        if let Some(token) = token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("ascii"),
            );
        }
        request
    };

    let refused = service
        .clone()
        .oneshot(request(None))
        .await
        .expect("answer");
    assert_eq!(grpc_status(&refused), Some("16"), "UNAUTHENTICATED");
    assert_eq!(refused.body(), "", "the service never ran");

    let starting = service
        .clone()
        .oneshot(request(Some(token.expose())))
        .await
        .expect("answer");
    assert_eq!(
        grpc_status(&starting),
        Some("14"),
        "UNAVAILABLE while starting"
    );
    // A bad token is still UNAUTHENTICATED while starting: nothing is said to strangers.
    let stranger = service
        .clone()
        .oneshot(request(Some("not.a.jwt")))
        .await
        .expect("answer");
    assert_eq!(grpc_status(&stranger), Some("16"));

    started.send_replace(true);
    let served = service
        .oneshot(request(Some(token.expose())))
        .await
        .expect("answer");
    assert_eq!(grpc_status(&served), None);
    assert_eq!(served.body(), "carol");
}

#[tokio::test]
async fn service_identities_are_distinct() {
    let executor = Identity::service(ServiceIdentity::Executor);
    assert!(
        executor
            .require_service(&[ServiceIdentity::Executor])
            .is_ok()
    );
    let error = Identity::service(ServiceIdentity::Task)
        .require_service(&[ServiceIdentity::Executor])
        .expect_err("task is not the executor");
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn services_present_their_own_identity() {
    let mut credentials = ServiceCredentials::from_config(&config(SECRET), ServiceIdentity::Task)
        .expect("credentials");
    let request = credentials.call(Request::new(())).expect("header");
    let layer = AuthLayer::new(Arc::new(authenticator()));
    let identity = authenticate(&layer, request).await.expect("verified");
    assert!(identity.is_service(ServiceIdentity::Task));

    let fixed = AuthConfig {
        hs256_secret: None,
        service_token: Some(issuer().issue(
            &Identity::service(ServiceIdentity::Executor),
            Duration::from_secs(60),
        )),
        ..config(SECRET)
    };
    let mut credentials =
        ServiceCredentials::from_config(&fixed, ServiceIdentity::Executor).expect("fixed");
    let identity = authenticate(&layer, credentials.call(Request::new(())).expect("header"))
        .await
        .expect("verified");
    assert!(identity.is_service(ServiceIdentity::Executor));
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_public_key_only() {
    // A throw-away key pair made for this test (`openssl genrsa 2048`); it guards nothing.
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let private = std::fs::read(format!("{fixtures}/rs256-test-private.pem")).expect("private key");
    let config = AuthConfig {
        hs256_secret: None,
        rs256_public_keys: vec![format!("{fixtures}/rs256-test-public.pem").into()],
        ..config(SECRET)
    };
    let verifier = Authenticator::from_config(&config).expect("rs256 verifier");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = Claims {
        sub: "carol".into(),
        name: None,
        roles: vec!["admin".into()],
        exp: now + 60,
        iat: Some(now),
        iss: None,
        // Identity providers often send an array; ours among others is accepted.
        aud: Audience::Many(vec!["account".into(), "shadowsync".into()]),
    };
    let key = EncodingKey::from_rsa_pem(&private).expect("encoding key");
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("sign");
    let identity = verifier.verify(&token).await.expect("verifies");
    assert_eq!(
        (identity.subject.as_str(), identity.is_admin()),
        ("carol", true)
    );

    // An HS256 token is refused where only RS256 keys are configured.
    let hs = issuer().issue(
        &Identity::user("carol", &["admin"]),
        Duration::from_secs(60),
    );
    assert_eq!(
        verifier
            .verify(hs.expose())
            .await
            .expect_err("no hs256")
            .message(),
        "token algorithm not accepted"
    );
}

#[tokio::test]
async fn no_keys_is_a_setup_error() {
    let config = AuthConfig {
        hs256_secret: None,
        ..config(SECRET)
    };
    assert!(matches!(
        Authenticator::from_config(&config),
        Err(AuthSetupError::NoKeys)
    ));
}

/// An HS256 token signed with the test secret carrying exactly `claims`, as an attacker holding
/// a valid signing path (or an identity provider) could shape it.
fn signed(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn in_a_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 60
}

#[tokio::test]
async fn only_the_exact_service_subjects_are_services() {
    for service in ServiceIdentity::ALL {
        let token = issuer().issue(&Identity::service(service), Duration::from_secs(60));
        let identity = authenticator().verify(token.expose()).await.expect("valid");
        assert_eq!(identity.service_identity(), Some(service));
        assert!(identity.is_any_service());
    }
    // What an attacker minting a person's token would try: prefixes, case, padding, a bare
    // `svc:` with the admin role. Each verifies (the signature is fine) but is a person.
    for subject in [
        "svc:",
        "svc:taskx",
        "svc:anything",
        "SVC:task",
        "Svc:Task",
        "svc:task ",
        " svc:task",
        "svc:task\u{0}",
        "svc:executor/extra",
        "svc::task",
    ] {
        let token = signed(&serde_json::json!({
            "sub": subject, "roles": ["admin", "service"], "exp": in_a_minute(), "aud": "shadowsync",
        }));
        let identity = authenticator()
            .verify(&token)
            .await
            .expect("a valid person's token");
        assert_eq!(identity.subject, subject, "the subject is kept as sent");
        assert_eq!(
            identity.service_identity(),
            None,
            "{subject:?} is no service"
        );
        assert!(!identity.is_any_service(), "{subject:?}");
        for service in ServiceIdentity::ALL {
            assert!(!identity.is_service(service), "{subject:?}");
            assert_eq!(
                identity
                    .require_service(&ServiceIdentity::ALL)
                    .expect_err("no service privilege")
                    .code(),
                tonic::Code::PermissionDenied,
                "{subject:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_audience_array_is_accepted_only_when_it_holds_ours() {
    let exp = in_a_minute();
    let accepted = [
        serde_json::json!(["shadowsync"]),
        serde_json::json!(["other", "shadowsync", "third"]),
    ];
    for aud in accepted {
        let token = signed(&serde_json::json!({"sub": "alice", "exp": exp, "aud": aud}));
        let identity = authenticator()
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("aud {aud} refused: {e:?}"));
        assert_eq!(identity.subject, "alice");
    }
    let refused = [
        serde_json::json!([]),
        serde_json::json!(["other"]),
        serde_json::json!(["Shadowsync", "shadowsync "]),
        serde_json::json!("shadowsync-evil"),
        serde_json::json!(["shadowsync-evil", "evil"]),
    ];
    for aud in refused {
        let token = signed(&serde_json::json!({"sub": "alice", "exp": exp, "aud": aud}));
        let error = authenticator()
            .verify(&token)
            .await
            .expect_err("foreign audience");
        assert_eq!(error.code(), tonic::Code::Unauthenticated, "aud {aud}");
        assert_eq!(error.message(), "token audience not accepted", "aud {aud}");
    }
    // Not a string nor an array of strings: refused, never read as "no audience".
    for aud in [
        serde_json::json!(7),
        serde_json::json!([7]),
        serde_json::json!({"a": 1}),
    ] {
        let token = signed(&serde_json::json!({"sub": "alice", "exp": exp, "aud": aud}));
        let error = authenticator()
            .verify(&token)
            .await
            .expect_err("malformed audience");
        assert_eq!(error.code(), tonic::Code::Unauthenticated, "aud {aud}");
    }
}

#[tokio::test]
async fn exp_aud_and_sub_stay_required() {
    let exp = in_a_minute();
    let cases = [
        serde_json::json!({"sub": "alice", "aud": "shadowsync"}),
        serde_json::json!({"sub": "alice", "exp": exp}),
        serde_json::json!({"sub": "alice", "exp": exp, "aud": null}),
        serde_json::json!({"exp": exp, "aud": "shadowsync"}),
        serde_json::json!({"sub": "alice", "exp": exp, "aud": ["shadowsync"], "roles": "admin"}),
    ];
    for claims in cases {
        let error = authenticator()
            .verify(&signed(&claims))
            .await
            .expect_err("incomplete claims");
        assert_eq!(error.code(), tonic::Code::Unauthenticated, "{claims}");
    }
    let empty = signed(&serde_json::json!({"sub": "", "exp": exp, "aud": ["shadowsync"]}));
    assert_eq!(
        authenticator()
            .verify(&empty)
            .await
            .expect_err("empty")
            .message(),
        "token has an empty subject"
    );
}
