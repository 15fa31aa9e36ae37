//! gRPC and queue contracts of shadowsync: the generated code of every `.proto` under
//! `proto/shadowsync/`, plus the constants that go with it.
//!
//! # Layout
//! One module per protobuf package, mirroring the directories:
//!
//! | module | package | contents |
//! |---|---|---|
//! | [`common::v1`] | `shadowsync.common.v1` | identity ([`common::v1::Actor`]), connection details, shadow naming, table plans shared by analysis, task and executor, and the queue messages produced by several services ([`common::v1::ExecuteTask`], [`common::v1::ExecutionDispatched`]) |
//! | [`task::v1`] | `shadowsync.task.v1` | `TaskService` (public), `TaskExecutionService` (executors only), [`task::v1::TaskEvent`] |
//! | [`approval::v1`] | `shadowsync.approval.v1` | `ApprovalService`, [`approval::v1::ApprovalEvent`], [`approval::v1::PermissionEvent`] |
//! | [`analysis::v1`] | `shadowsync.analysis.v1` | `AnalysisService` (task service only) |
//!
//! Each service has a client (`<service>_client::<Service>Client`) and a server
//! (`<service>_server::{<Service>, <Service>Server}`). Every server trait method has a default
//! body answering `UNIMPLEMENTED`, so a service implements its RPCs one issue at a time.
//!
//! # Conventions (buf style; see `proto/README.md`)
//! - One versioned package per directory; `rpc VerbNoun(VerbNounRequest) returns (VerbNounResponse)`.
//! - Every enum's zero value is `<ENUM>_UNSPECIFIED`; values carry the enum's name as prefix.
//! - Times are `google.protobuf.Timestamp` / `Duration`; lists page with `page_size`, `page_token`
//!   → `next_page_token`, `total_size`; retried mutations take a `request_id`.
//! - No message is allowed near tonic's 4 MiB limit: large results are paged or streamed.
//! - Connection passwords appear only in [`common::v1::ConnectionDetails`], which only internal
//!   calls carry (a test proves no public response reaches it).
//!
//! The contract tests (`tests/contract.rs`) check these conventions on the descriptor set.
//!
//! Beside the generated code: [`names`] (request types, service identities, AMQP names),
//! [`routing`] (event routing keys) and, with the default `json` feature, `json` (canonical proto3
//! JSON of any message, for `shadowctl --output json` and template files).

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod common {
    //! `shadowsync.common.v1`.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/shadowsync.common.v1.rs"));
    }
}

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod task {
    //! `shadowsync.task.v1`.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/shadowsync.task.v1.rs"));
    }
}

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod approval {
    //! `shadowsync.approval.v1`.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/shadowsync.approval.v1.rs"));
    }
}

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod analysis {
    //! `shadowsync.analysis.v1`.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/shadowsync.analysis.v1.rs"));
    }
}

#[cfg(feature = "json")]
pub mod json;
pub mod names;
pub mod routing;

/// Encoded `google.protobuf.FileDescriptorSet` of every shadowsync package (and the well-known
/// types they import), for `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shadowsync.bin"));

/// Descriptor set of `shadowsync.common.v1` (no services; imported by the others).
pub const COMMON_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/shadowsync.common.v1.bin"));

/// Descriptor set of `shadowsync.task.v1` and its imports: `TaskService`, `TaskExecutionService`.
pub const TASK_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/shadowsync.task.v1.bin"));

/// Descriptor set of `shadowsync.approval.v1` and its imports: `ApprovalService`.
pub const APPROVAL_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/shadowsync.approval.v1.bin"));

/// Descriptor set of `shadowsync.analysis.v1` and its imports: `AnalysisService`.
pub const ANALYSIS_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/shadowsync.analysis.v1.bin"));

/// Fully-qualified name of `TaskService` (public).
pub const TASK_SERVICE: &str = "shadowsync.task.v1.TaskService";
/// Fully-qualified name of `TaskExecutionService` (`svc:executor` only).
pub const TASK_EXECUTION_SERVICE: &str = "shadowsync.task.v1.TaskExecutionService";
/// Fully-qualified name of `ApprovalService`.
pub const APPROVAL_SERVICE: &str = "shadowsync.approval.v1.ApprovalService";
/// Fully-qualified name of `AnalysisService` (`svc:task` only).
pub const ANALYSIS_SERVICE: &str = "shadowsync.analysis.v1.AnalysisService";

/// Every shadowsync gRPC service, for health registration, reflection and tests.
pub const SERVICE_NAMES: &[&str] = &[
    TASK_SERVICE,
    TASK_EXECUTION_SERVICE,
    APPROVAL_SERVICE,
    ANALYSIS_SERVICE,
];
