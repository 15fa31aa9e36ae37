//! People's tokens from the company's identity provider, against a JWK Set server on 127.0.0.1
//! whose answers and request count the tests control, and the attacks on that path: borrowed
//! keys, confused algorithms, self-granted roles and services, and floods of unknown key ids.
//! The refresh pacing runs on a `ManualClock`, so no test sleeps for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shadowsync_common::auth::{Authenticator, FetchLimits, Identity, ServiceIdentity};
use shadowsync_common::clock::ManualClock;
use shadowsync_common::config::{AuthConfig, IdentityProviderConfig};
use shadowsync_common::secret::Secret;
use shadowsync_common::testing::identity_provider::{
    ATTACKER, Answer, IDP_A, IDP_B, JwksServer, LOCAL, TestKey, jwks_of,
};
use tonic::{Code, Status};

const ISSUER: &str = "https://idp.test/realms/corp";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn limits() -> FetchLimits {
    FetchLimits {
        min_interval: Duration::from_secs(30),
        timeout: Duration::from_millis(500),
        max_bytes: 64 * 1024,
        period: Duration::from_secs(600),
    }
}

/// Local keys (the HS256 secret and `LOCAL` as the JWK Set file) and the identity provider at
/// `url`, mapping `platform-admins` to admin and `dba-leads` to dba-approver from `groups`.
fn config(url: &str) -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(Secret::new(SECRET.to_string())),
        jwks_file: Some(format!("{FIXTURES}/local.jwks.json").into()),
        identity_provider: Some(IdentityProviderConfig {
            jwks_url: url.to_string(),
            issuer: ISSUER.to_string(),
            roles_claim: Some("groups".into()),
            role_map: BTreeMap::from([
                ("platform-admins".into(), vec!["admin".into()]),
                ("dba-leads".into(), vec!["dba-approver".into()]),
            ]),
        }),
        ..AuthConfig::default()
    }
}

struct Setup {
    server: JwksServer,
    clock: ManualClock,
    authenticator: Authenticator,
}

async fn setup(keys: &[TestKey]) -> Setup {
    setup_with(keys, |config| config).await
}

async fn setup_with(keys: &[TestKey], change: impl FnOnce(AuthConfig) -> AuthConfig) -> Setup {
    let members: Vec<_> = keys.iter().map(TestKey::member).collect();
    let server = JwksServer::start(&jwks_of(&members)).await;
    let clock = ManualClock::new(1_000_000_000);
    let authenticator = Authenticator::with_clock(
        &change(config(&server.url())),
        Arc::new(clock.clone()),
        limits(),
    )
    .expect("authenticator");
    Setup {
        server,
        clock,
        authenticator,
    }
}

impl Setup {
    async fn verify(&self, token: &str) -> Result<Identity, Status> {
        self.authenticator.verify(token).await
    }

    /// Past the minimum interval between two fetches.
    fn later(&self) {
        self.clock.advance(Duration::from_secs(31));
    }
}

/// A person's claims as the identity provider issues them, with `extra` merged in (`null`
/// removes a claim).
fn person(extra: serde_json::Value) -> serde_json::Value {
    let mut claims = json!({
        "sub": "alice", "preferred_username": "Alice A.", "iss": ISSUER,
        "aud": ["account", "shadowsync"], "iat": now(), "exp": now() + 300,
        "groups": ["developers"],
    });
    for (name, value) in extra.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn refused(result: Result<Identity, Status>, message: &str) {
    let status = result.expect_err(message);
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), message);
}

#[tokio::test]
async fn people_get_the_roles_their_groups_map_to_and_nothing_else() {
    let idp = setup(&[IDP_A]).await;
    let cases = [
        (json!(["platform-admins", "developers"]), vec!["admin"]),
        (json!("platform-admins"), vec!["admin"]),
        (
            json!(["dba-leads", "platform-admins", "dba-leads"]),
            vec!["dba-approver", "admin"],
        ),
        (
            json!(["developers", "Platform-Admins", "platform-admins "]),
            vec![],
        ),
        (json!([]), vec![]),
        (json!(7), vec![]),
        (json!({"platform-admins": true}), vec![]),
        (json!([["platform-admins"], 7]), vec![]),
    ];
    for (groups, roles) in cases {
        let token = IDP_A.sign(&person(json!({ "groups": groups })));
        let identity = idp.verify(&token).await.expect("a person");
        assert_eq!(identity.subject, "alice");
        assert_eq!(identity.name, "Alice A.");
        assert_eq!(identity.roles, roles, "groups {groups}");
    }
    let no_groups = idp
        .verify(&IDP_A.sign(&person(json!({"groups": null}))))
        .await
        .expect("a person");
    assert!(no_groups.roles.is_empty());
    assert_eq!(idp.server.requests(), 1, "one fetch served every token");
}

#[tokio::test]
async fn a_nested_roles_claim_is_read_by_its_path() {
    let idp = setup_with(&[IDP_A], |mut config| {
        if let Some(provider) = &mut config.identity_provider {
            provider.roles_claim = Some("realm_access.roles".into());
        }
        config
    })
    .await;
    let token = IDP_A.sign(&person(
        json!({"realm_access": {"roles": ["platform-admins"]}}),
    ));
    assert!(idp.verify(&token).await.expect("a person").is_admin());
}

#[tokio::test]
async fn an_identity_provider_token_never_makes_a_service_or_grants_roles_itself() {
    let idp = setup(&[IDP_A]).await;
    // Roles written straight into the token are not the roles claim: no admin.
    let self_made = IDP_A.sign(&person(json!({"roles": ["admin", "service"]})));
    let identity = idp.verify(&self_made).await.expect("a person");
    assert!(!identity.is_admin());
    assert!(identity.roles.is_empty(), "{:?}", identity.roles);

    for subject in [
        "svc:executor",
        "svc:task",
        "svc:approval",
        "svc:analysis",
        "SVC:executor",
        "Svc:Task",
        "svc:anything",
    ] {
        let token = IDP_A.sign(&person(json!({
            "sub": subject, "groups": ["platform-admins"], "roles": ["service"],
        })));
        refused(
            idp.verify(&token).await,
            "an identity provider's token cannot name a service identity (svc:*)",
        );
    }

    // The same subject from the platform's own keys is the service.
    let local = LOCAL.sign(&json!({
        "sub": "svc:executor", "roles": ["service"], "aud": "shadowsync", "exp": now() + 300,
    }));
    let identity = idp.verify(&local).await.expect("a service");
    assert_eq!(identity.service_identity(), Some(ServiceIdentity::Executor));
    // And the platform's keys keep their `roles` claim (`shadowsync credentials token`).
    let admin = LOCAL.sign(&json!({
        "sub": "root", "roles": ["admin"], "aud": "shadowsync", "exp": now() + 300,
    }));
    assert!(idp.verify(&admin).await.expect("local admin").is_admin());
}

#[tokio::test]
async fn issuer_audience_and_expiry_are_enforced() {
    let idp = setup(&[IDP_A]).await;
    let sign = |extra| IDP_A.sign(&person(extra));
    idp.verify(&sign(json!({"aud": "shadowsync"})))
        .await
        .expect("one audience");
    idp.verify(&sign(json!({"aud": ["shadowsync"]})))
        .await
        .expect("an array holding ours");
    refused(
        idp.verify(&sign(json!({"iss": "https://idp.test/realms/other"})))
            .await,
        "token issuer not accepted",
    );
    refused(
        idp.verify(&sign(json!({"iss": format!("{ISSUER}/")})))
            .await,
        "token issuer not accepted",
    );
    refused(
        idp.verify(&sign(json!({"iss": null}))).await,
        "token lacks a required claim: iss",
    );
    for aud in [
        json!("account"),
        json!(["account", "shadowsync-x"]),
        json!([]),
    ] {
        refused(
            idp.verify(&sign(json!({ "aud": aud }))).await,
            "token audience not accepted",
        );
    }
    refused(
        idp.verify(&sign(json!({"exp": now() - 3600}))).await,
        "token expired",
    );
    refused(
        idp.verify(&sign(json!({"nbf": now() + 3600}))).await,
        "token not valid yet",
    );
    for missing in ["sub", "exp", "aud"] {
        let status = idp
            .verify(&sign(json!({ missing: null })))
            .await
            .expect_err(missing);
        assert_eq!(status.code(), Code::Unauthenticated, "{missing}");
    }
    refused(
        idp.verify(&sign(json!({"sub": ""}))).await,
        "token has an empty subject",
    );
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refresh() {
    let idp = setup(&[IDP_A]).await;
    idp.verify(&IDP_A.sign(&person(json!({}))))
        .await
        .expect("the first key");
    assert_eq!(idp.server.requests(), 1);

    // The provider publishes its next key beside the current one, then signs with it.
    idp.server
        .serve(&jwks_of(&[IDP_A.member(), IDP_B.member()]));
    idp.later();
    let rotated = IDP_B.sign(&person(json!({"groups": ["platform-admins"]})));
    let identity = idp.verify(&rotated).await.expect("the new key");
    assert!(identity.is_admin());
    assert_eq!(idp.server.requests(), 2, "exactly one refresh");
    idp.verify(&rotated).await.expect("cached");
    idp.verify(&IDP_A.sign(&person(json!({}))))
        .await
        .expect("the old key until it is withdrawn");
    assert_eq!(idp.server.requests(), 2);
}

#[tokio::test]
async fn a_new_key_within_the_minimum_interval_waits_for_the_next_refresh() {
    let idp = setup(&[IDP_A]).await;
    idp.verify(&IDP_A.sign(&person(json!({}))))
        .await
        .expect("the first key");
    idp.server
        .serve(&jwks_of(&[IDP_A.member(), IDP_B.member()]));
    let rotated = IDP_B.sign(&person(json!({})));
    refused(idp.verify(&rotated).await, "token signing key not known");
    assert_eq!(idp.server.requests(), 1, "no fetch within the interval");
    idp.later();
    idp.verify(&rotated).await.expect("after the interval");
    assert_eq!(idp.server.requests(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_fetches_at_most_once_per_interval() {
    let idp = Arc::new(setup(&[IDP_A]).await);
    let flood = |round: usize| {
        let idp = idp.clone();
        async move {
            let attempts = (0..200).map(|i| {
                let idp = idp.clone();
                async move {
                    let token =
                        ATTACKER.sign_as(&person(json!({})), Some(&format!("k-{round}-{i}")));
                    idp.verify(&token).await
                }
            });
            for result in futures::future::join_all(attempts).await {
                refused(result, "token signing key not known");
            }
        }
    };
    flood(0).await;
    assert_eq!(
        idp.server.requests(),
        1,
        "200 concurrent unknown kids, one fetch"
    );
    flood(1).await;
    assert_eq!(idp.server.requests(), 1, "none within the interval");
    idp.later();
    flood(2).await;
    assert_eq!(idp.server.requests(), 2, "one more after it");
    // Known keys never fetch.
    idp.later();
    for _ in 0..20 {
        idp.verify(&IDP_A.sign(&person(json!({}))))
            .await
            .expect("known key");
    }
    assert_eq!(idp.server.requests(), 2);
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_last_good_keys() {
    let idp = setup(&[IDP_A]).await;
    let good = IDP_A.sign(&person(json!({"groups": "platform-admins"})));
    idp.verify(&good).await.expect("fetched");
    let unknown = IDP_B.sign(&person(json!({})));
    let oversized = jwks_of(&vec![IDP_B.member(); 1]) + &" ".repeat(70 * 1024);
    let failures = [
        Answer::Status(500),
        Answer::Status(404),
        Answer::Ok("<html>maintenance</html>".into()),
        Answer::Ok(r#"{"keys": 7}"#.into()),
        Answer::Ok(oversized),
        Answer::Stall,
    ];
    for (round, failure) in failures.into_iter().enumerate() {
        idp.server.answer(failure.clone());
        idp.later();
        let started = std::time::Instant::now();
        refused(idp.verify(&unknown).await, "token signing key not known");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{failure:?}: a fetch is bounded in time"
        );
        assert_eq!(idp.server.requests(), round + 2, "{failure:?}: one fetch");
        let identity = idp.verify(&good).await.expect("the old key still works");
        assert!(identity.is_admin(), "{failure:?}");
    }
    // An empty but valid set is a successful fetch: the provider withdrew every key.
    idp.server.serve(&jwks_of(&[]));
    idp.later();
    refused(idp.verify(&unknown).await, "token signing key not known");
    refused(idp.verify(&good).await, "token signing key not known");
}

#[tokio::test]
async fn unusable_published_keys_are_ignored() {
    let mut enc = IDP_B.member();
    enc["use"] = json!("enc");
    let mut rs512 = IDP_B.member();
    rs512["alg"] = json!("RS512");
    for member in [enc, rs512] {
        let server = JwksServer::start(&jwks_of(&[IDP_A.member(), member.clone()])).await;
        let authenticator = Authenticator::with_clock(
            &config(&server.url()),
            Arc::new(ManualClock::new(0)),
            limits(),
        )
        .expect("authenticator");
        authenticator
            .verify(&IDP_A.sign(&person(json!({}))))
            .await
            .expect("the usable key");
        refused(
            authenticator.verify(&IDP_B.sign(&person(json!({})))).await,
            "token signing key not known",
        );
    }
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token with exactly this header, signed by `key` with `algorithm`.
fn forged(header: serde_json::Value, claims: &serde_json::Value, key: &EncodingKey) -> String {
    let message = format!("{}.{}", b64(&header), b64(claims));
    let algorithm = match header["alg"].as_str() {
        Some("HS256") => Algorithm::HS256,
        _ => Algorithm::RS256,
    };
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm).unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn keys_cannot_be_borrowed_across_sources_nor_algorithms_confused() {
    let idp = setup(&[IDP_A]).await;
    let admin_person = person(json!({"groups": ["platform-admins"]}));
    let service = json!({
        "sub": "svc:executor", "roles": ["service"], "aud": "shadowsync", "exp": now() + 300,
        "iss": ISSUER,
    });
    // Warm the provider's cache so every key below is known to its source.
    idp.verify(&IDP_A.sign(&admin_person)).await.expect("warm");

    // A kid names one key of one source: the other source's key never verifies it.
    refused(
        idp.verify(&IDP_A.sign_as(&service, Some(&LOCAL.kid())))
            .await,
        "invalid token signature",
    );
    refused(
        idp.verify(&LOCAL.sign_as(&admin_person, Some(&IDP_A.kid())))
            .await,
        "invalid token signature",
    );
    refused(
        idp.verify(&ATTACKER.sign_as(&service, Some(&LOCAL.kid())))
            .await,
        "invalid token signature",
    );
    refused(
        idp.verify(&ATTACKER.sign_as(&admin_person, Some(&IDP_A.kid())))
            .await,
        "invalid token signature",
    );
    refused(
        idp.verify(&IDP_A.sign_as(&admin_person, None)).await,
        "token has no key id (kid) to choose a key by",
    );

    // HS256 signed with public material as the secret: only the configured secret verifies.
    let public_pem = std::fs::read(format!("{FIXTURES}/local-public.pem")).unwrap();
    for secret in [
        public_pem.clone(),
        LOCAL.jwks.as_bytes().to_vec(),
        IDP_A.member()["n"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let key = EncodingKey::from_secret(&secret);
        for kid in [None, Some(LOCAL.kid()), Some(IDP_A.kid())] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = kid;
            let token = jsonwebtoken::encode(&header, &service, &key).unwrap();
            refused(idp.verify(&token).await, "invalid token signature");
        }
    }
    let pem_only = Authenticator::from_config(&AuthConfig {
        rs256_public_keys: vec![format!("{FIXTURES}/local-public.pem").into()],
        ..AuthConfig::default()
    })
    .unwrap();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &service,
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    refused(
        pem_only.verify(&token).await,
        "token algorithm not accepted",
    );

    // `alg: none` and other algorithms.
    for alg in ["none", "None", "RS512", "PS256", "ES256", "HS512"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "kid": LOCAL.kid()})),
            b64(&service)
        );
        let status = idp.verify(&token).await.expect_err(alg);
        assert_eq!(status.code(), Code::Unauthenticated, "{alg}");
    }

    // A key the token brings along (`jwk`, `jku`, `x5u`) is never used.
    let attacker_key = EncodingKey::from_rsa_pem(ATTACKER.private_pem.as_bytes()).unwrap();
    for (name, value) in [
        ("jwk", ATTACKER.member()),
        ("jku", json!(idp.server.url())),
        ("x5u", json!(idp.server.url())),
    ] {
        let token = forged(
            json!({"alg": "RS256", "kid": ATTACKER.kid(), name: value}),
            &admin_person,
            &attacker_key,
        );
        let status = idp.verify(&token).await.expect_err(name);
        assert_eq!(status.code(), Code::Unauthenticated, "{name}");
    }
}

#[tokio::test]
async fn refusals_and_debug_output_never_carry_tokens_or_keys() {
    let idp = setup(&[IDP_A]).await;
    let tokens = [
        IDP_A.sign(&person(json!({"iss": "elsewhere"}))),
        IDP_A.sign(&person(json!({"exp": now() - 3600}))),
        ATTACKER.sign(&person(json!({}))),
        IDP_A.sign(&person(json!({"sub": "svc:task"}))),
        "a.b.c".to_string(),
    ];
    for token in tokens {
        let status = idp.verify(&token).await.expect_err("refused");
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!status.message().contains(part), "{status:?}");
        }
        assert!(!format!("{status:?}").contains(&token));
    }
    let debug = format!("{:?}", idp.authenticator);
    let modulus = IDP_A.member()["n"].as_str().unwrap().to_string();
    assert!(!debug.contains(&modulus[..16]), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");
}

#[tokio::test]
async fn the_periodic_refresh_fetches_without_any_token_asking() {
    let idp = setup(&[IDP_A]).await;
    let refresh = idp
        .authenticator
        .refresh_periodically()
        .expect("a provider");
    for _ in 0..200 {
        if idp.server.requests() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(idp.server.requests(), 1, "fetched at start");
    drop(refresh);
    // Known now, with no fetch on the way.
    idp.verify(&IDP_A.sign(&person(json!({}))))
        .await
        .expect("cached");
    assert_eq!(idp.server.requests(), 1);
    let none = Authenticator::from_config(&AuthConfig {
        hs256_secret: Some(Secret::new(SECRET.into())),
        ..AuthConfig::default()
    })
    .unwrap();
    assert!(none.refresh_periodically().is_none());
}

#[test]
fn a_jwks_file_that_cannot_verify_anything_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = LOCAL.member();
    enc["use"] = json!("enc");
    for (name, contents) in [
        ("empty.json", jwks_of(&[])),
        ("encryption-only.json", jwks_of(&[enc])),
        ("not-a-set.json", "[]".to_string()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let error = Authenticator::from_config(&AuthConfig {
            jwks_file: Some(path),
            ..AuthConfig::default()
        })
        .expect_err(name)
        .to_string();
        assert!(
            error.contains("auth.jwks_file") && error.contains(name),
            "{error}"
        );
    }
    let error = Authenticator::from_config(&AuthConfig {
        jwks_file: Some(dir.path().join("missing.json")),
        ..AuthConfig::default()
    })
    .expect_err("missing")
    .to_string();
    assert!(error.contains("missing.json"), "{error}");
}
