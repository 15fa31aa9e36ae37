//! The gRPC adapter against a real tonic server on 127.0.0.1:0 playing the task service:
//! conversions, the status codes the contract gives meaning to, and the executor's credentials.

#![allow(clippy::unwrap_used)]

use shadowsync_common::auth::{ServiceCredentials, ServiceIdentity};
use shadowsync_common::config::AuthConfig;
use shadowsync_common::grpc::{as_service, channel};
use shadowsync_proto::common::v1 as common;
use shadowsync_proto::task::v1::task_execution_service_server::{
    TaskExecutionService, TaskExecutionServiceServer,
};
use tonic::{Request, Response};

use super::*;

/// A scripted task service: task 1 is granted, 2 refused, 3 unknown, 5 granted with a plan that
/// is not the approved one (6: with a strategy that is not), anything else unavailable; only the
/// lease token `good` is accepted.
struct ScriptedTaskService;

fn authorized<T>(request: &Request<T>) -> Result<(), Status> {
    match request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        Some(value) if value.starts_with("Bearer ") => Ok(()),
        _ => Err(Status::unauthenticated("no bearer token")),
    }
}

/// The second plan page (token `p2`).
fn second_page() -> Vec<pb::ExecutionPlanTable> {
    vec![pb::ExecutionPlanTable {
        plan: Some(common::TablePlan {
            ordinal: 1,
            source_table: "items".into(),
            shadow_table: "_test_items".into(),
            fingerprints: Some(common::TableFingerprints {
                source: "si".into(),
                shadow: "hi".into(),
                target: "ti".into(),
            }),
            statements: vec![common::PlannedStatement {
                index: 0,
                sql: "ALTER TABLE `_test_items` ADD COLUMN b int".into(),
                expected_fingerprint_after: "ti".into(),
                script_index: 5,
            }],
            depends_on: vec!["orders".into()],
            ..Default::default()
        }),
        recorded_status: pb::TableExecutionStatus::Pending.into(),
        recorded_statements_done: 0,
    }]
}

/// The digest of [`granted`]'s whole plan, computed here from the documented encoding's
/// builder, independently of the backend's conversion.
fn approved_digest() -> String {
    use shadowsync_common::plan_digest::{
        DigestStatement, DigestTable, ExecutionTerms, PlanDigest,
    };
    let mut digest = PlanDigest::new("c-7", "shop");
    digest.table(
        &DigestTable {
            source_table: "orders",
            shadow_table: "_test_orders",
            source_fingerprint: "s",
            shadow_fingerprint: "",
            target_fingerprint: "t",
            depends_on: &[],
        },
        &[DigestStatement {
            script_index: 4,
            sql: "CREATE TABLE `_test_orders` (id int)",
            expected_fingerprint_after: "t",
        }],
    );
    digest.table(
        &DigestTable {
            source_table: "items",
            shadow_table: "_test_items",
            source_fingerprint: "si",
            shadow_fingerprint: "hi",
            target_fingerprint: "ti",
            depends_on: &["orders".to_owned()],
        },
        &[DigestStatement {
            script_index: 5,
            sql: "ALTER TABLE `_test_items` ADD COLUMN b int",
            expected_fingerprint_after: "ti",
        }],
    );
    digest.finish(Some(ExecutionTerms {
        error_strategy: pb::ErrorStrategy::Continue as i32,
        scheduled_at: Some(7_000_000),
    }))
}

fn granted() -> pb::ClaimedExecution {
    pb::ClaimedExecution {
        lease: Some(pb::ExecutionLease {
            lease_token: "good".into(),
            lease_expire_time: Some(to_timestamp(5_000_000)),
            heartbeat_interval: Some(prost_types::Duration {
                seconds: 3,
                nanos: 0,
            }),
            execution_deadline: None,
        }),
        connection: Some(common::ConnectionDetails {
            connection_id: "c-7".into(),
            host: "db.internal".into(),
            port: 3307,
            username: "ddl".into(),
            password: "s3cret".into(),
            ..Default::default()
        }),
        database: "shop".into(),
        error_strategy: pb::ErrorStrategy::Continue.into(),
        tables: vec![pb::ExecutionPlanTable {
            plan: Some(common::TablePlan {
                ordinal: 0,
                source_table: "orders".into(),
                shadow_table: "_test_orders".into(),
                fingerprints: Some(common::TableFingerprints {
                    source: "s".into(),
                    shadow: String::new(),
                    target: "t".into(),
                }),
                statements: vec![common::PlannedStatement {
                    index: 0,
                    sql: "CREATE TABLE `_test_orders` (id int)".into(),
                    expected_fingerprint_after: "t".into(),
                    script_index: 4,
                }],
                ..Default::default()
            }),
            recorded_status: pb::TableExecutionStatus::Running.into(),
            recorded_statements_done: 0,
        }],
        plan_next_page_token: "p2".into(),
        plan_table_count: 2,
        script_sha256: approved_digest(),
        scheduled_time: Some(to_timestamp(7_000_000)),
        naming: Some(common::ShadowNaming {
            mode: common::ShadowNamingMode::Suffix.into(),
            affix: "_s".into(),
        }),
    }
}

#[tonic::async_trait]
impl TaskExecutionService for ScriptedTaskService {
    async fn claim_execution(
        &self,
        request: Request<pb::ClaimExecutionRequest>,
    ) -> Result<Response<pb::ClaimExecutionResponse>, Status> {
        authorized(&request)?;
        let outcome = match request.get_ref().task_id {
            1 => pb::claim_execution_response::Outcome::Granted(granted()),
            2 => pb::claim_execution_response::Outcome::Refused(
                pb::ClaimRefusalReason::LeaseHeld.into(),
            ),
            3 => return Err(Status::not_found("task 3")),
            5 => {
                // A statement moved from one table to the other on the way.
                let mut tampered = granted();
                let plan = tampered.tables[0].plan.as_mut().unwrap();
                plan.statements[0].sql =
                    "CREATE TABLE `_test_orders` (id int);\nDROP TABLE orders".into();
                pb::claim_execution_response::Outcome::Granted(tampered)
            }
            6 => pb::claim_execution_response::Outcome::Granted(pb::ClaimedExecution {
                error_strategy: pb::ErrorStrategy::Abort.into(),
                ..granted()
            }),
            _ => return Err(Status::unavailable("approval service down")),
        };
        Ok(Response::new(pb::ClaimExecutionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn get_execution_plan(
        &self,
        request: Request<pb::GetExecutionPlanRequest>,
    ) -> Result<Response<pb::GetExecutionPlanResponse>, Status> {
        authorized(&request)?;
        if request.get_ref().lease_token != "good" || request.get_ref().page_token != "p2" {
            return Err(Status::aborted("lease lost"));
        }
        Ok(Response::new(pb::GetExecutionPlanResponse {
            tables: second_page(),
            next_page_token: String::new(),
            total_size: 2,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        authorized(&request)?;
        if request.get_ref().lease_token != "good" {
            return Err(Status::aborted("lease lost"));
        }
        Ok(Response::new(pb::HeartbeatResponse {
            lease_expire_time: Some(to_timestamp(9_000_000)),
            abort_requested: true,
        }))
    }

    async fn report_table_result(
        &self,
        request: Request<pb::ReportTableResultRequest>,
    ) -> Result<Response<pb::ReportTableResultResponse>, Status> {
        authorized(&request)?;
        match request.get_ref().status() {
            pb::TableExecutionStatus::Failed => {
                Err(Status::failed_precondition("already SUCCEEDED"))
            }
            _ => Ok(Response::new(pb::ReportTableResultResponse {
                abort_requested: false,
            })),
        }
    }
}

async fn backend() -> GrpcExecutionBackend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TaskExecutionServiceServer::new(ScriptedTaskService))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let config = AuthConfig {
        hs256_secret: Some(Secret::new("test-secret-test-secret-test-secret".into())),
        rs256_public_keys: Vec::new(),
        audience: "shadowsync".into(),
        service_token: None,
        ..AuthConfig::default()
    };
    let credentials = ServiceCredentials::from_config(&config, ServiceIdentity::Executor).unwrap();
    let channel = channel(&format!("http://{address}"), None).unwrap();
    GrpcExecutionBackend::new(as_service(channel, credentials))
}

fn lease(token: &str) -> LeaseRef {
    LeaseRef {
        task_id: 1,
        attempt: 1,
        token: token.into(),
    }
}

#[tokio::test]
async fn a_granted_claim_is_converted_into_the_crates_types() {
    let backend = backend().await;
    let ClaimOutcome::Granted(claim) = backend.claim(1, 1, "executor-a").await.unwrap() else {
        panic!("expected a grant");
    };
    assert_eq!(claim.lease.lease, lease("good"));
    assert_eq!(claim.lease.expire_time, 5_000_000);
    assert_eq!(claim.lease.heartbeat_interval, Duration::from_secs(3));
    assert_eq!(
        (
            claim.target.host.as_str(),
            claim.target.port,
            claim.target.database.as_str()
        ),
        ("db.internal", 3307, "shop")
    );
    assert_eq!(claim.target.password.expose(), "s3cret");
    assert!(
        !format!("{claim:?}").contains("s3cret"),
        "the password never reaches Debug"
    );
    assert_eq!(claim.error_strategy, pb::ErrorStrategy::Continue);
    // The whole plan, fetched page by page, and checked against the approved digest.
    assert_eq!(claim.plan_next_page_token, "");
    assert_eq!(claim.tables.len(), 2);
    assert_eq!(claim.tables[1].source, "items");
    assert_eq!(claim.connection_id, "c-7");
    assert_eq!(claim.scheduled_at, Some(7_000_000));
    assert_eq!(claim.plan_digest(), approved_digest());
    let table = &claim.tables[0];
    assert_eq!(
        (table.source.as_str(), table.shadow.as_str()),
        ("orders", "_test_orders")
    );
    assert_eq!(table.recorded_status, pb::TableExecutionStatus::Running);
    assert_eq!(table.statements[0].script_index, 4);
    assert_eq!(table.target_fingerprint, "t");
    assert_eq!(
        claim.naming,
        Some(ShadowNaming::suffix(Some("_s")).unwrap())
    );
}

#[test]
fn the_naming_rule_is_read_with_its_defaults_and_checked() {
    let rule = |mode: common::ShadowNamingMode, affix: &str| common::ShadowNaming {
        mode: mode.into(),
        affix: affix.into(),
    };
    assert_eq!(
        naming(rule(common::ShadowNamingMode::Unspecified, "")).unwrap(),
        ShadowNaming::default()
    );
    assert_eq!(
        naming(rule(common::ShadowNamingMode::Suffix, "")).unwrap(),
        ShadowNaming::suffix(None).unwrap()
    );
    // An affix that would make the guard accept odd names is a broken response.
    for affix in ["a`b", "x; DROP", &"a".repeat(33)] {
        let error = naming(rule(common::ShadowNamingMode::Prefix, affix)).unwrap_err();
        assert!(error.to_string().contains("naming.affix"), "{error}");
    }
    let error = naming(common::ShadowNaming {
        mode: 9,
        affix: String::new(),
    })
    .unwrap_err();
    assert!(error.to_string().contains("naming.mode"), "{error}");
}

#[tokio::test]
async fn a_plan_that_is_not_the_approved_one_is_never_handed_to_the_engine() {
    let backend = backend().await;
    for task_id in [5, 6] {
        match backend.claim(task_id, 1, "executor-a").await {
            Err(BackendError::Rejected(message)) => {
                assert!(
                    message.contains("does not match the approved plan")
                        && message.contains(&approved_digest()),
                    "{message}"
                );
            }
            other => panic!("task {task_id}: a tampered plan was accepted: {other:?}"),
        }
    }
}

#[tokio::test]
async fn refusals_and_errors_keep_their_meaning() {
    let backend = backend().await;
    assert!(matches!(
        backend.claim(2, 1, "executor-a").await.unwrap(),
        ClaimOutcome::Refused(pb::ClaimRefusalReason::LeaseHeld)
    ));
    assert_eq!(
        backend.claim(3, 1, "x").await.unwrap_err(),
        BackendError::NotFound
    );
    assert!(matches!(
        backend.claim(4, 1, "x").await.unwrap_err(),
        BackendError::Unavailable(_)
    ));
    let reply = backend.heartbeat(&lease("good"), "orders").await.unwrap();
    assert_eq!(
        (reply.lease_expire_time, reply.abort_requested),
        (9_000_000, true)
    );
    assert_eq!(
        backend.heartbeat(&lease("stale"), "").await.unwrap_err(),
        BackendError::LeaseLost
    );
    let report = TableReport {
        source_table: "orders".into(),
        status: pb::TableExecutionStatus::Failed,
        statements_done: 0,
        error_code: "1050".into(),
        error_message: "exists".into(),
        start_time: Some(1),
        end_time: Some(2),
        observed_shadow_fingerprint: String::new(),
    };
    assert!(matches!(
        backend
            .report_table(&lease("good"), &report)
            .await
            .unwrap_err(),
        BackendError::Rejected(_)
    ));
    // An unimplemented rpc is a plain rejection, not a retry loop.
    assert!(matches!(
        backend.append_logs(&lease("good"), &[]).await.unwrap_err(),
        BackendError::Rejected(_)
    ));
}

#[test]
fn a_call_cut_by_the_peer_is_retryable_and_a_refusal_is_not() {
    // What tonic returns when the task service's process dies mid-call.
    let cut = Status::unknown("transport error: connection reset");
    assert!(matches!(map_status(cut), BackendError::Unavailable(_)));
    let refused = Status::failed_precondition("task is final");
    assert!(matches!(map_status(refused), BackendError::Rejected(_)));
}
