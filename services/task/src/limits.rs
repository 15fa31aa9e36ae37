//! Every string a task-service request carries, bounded before the use case sees it:
//! a 60,000-character search string is INVALID_ARGUMENT naming the field, not a slow query or an
//! INTERNAL. The bounds are `shadowsync_common::limits`' and are listed in `task_service.proto`.
//! Each RPC handler calls [`Bounded::bounded`] first; a new request type does not compile in
//! `grpc.rs` until it says here what its fields may hold.

use std::collections::HashMap;

use shadowsync_common::error::ApiError;
use shadowsync_common::limits::{
    COMMENT, ID, MESSAGE, NAME, PAGE_TOKEN, SEARCH, TEXT, bounded, each_bounded,
};
use shadowsync_proto::common::v1::ShadowNaming;
use shadowsync_proto::task::v1::*;

/// A request whose string fields are within their bounds.
pub trait Bounded {
    /// Fails with INVALID_ARGUMENT naming the first field past its bound.
    fn bounded(&self) -> Result<(), ApiError>;
}

fn optional(value: Option<&String>, field: &str, max: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |value| bounded(value, field, max))
}

fn options(options: &HashMap<String, String>, field: &str) -> Result<(), ApiError> {
    let keys: Vec<&String> = options.keys().collect();
    each_bounded(&keys, field, NAME)?;
    for (key, value) in options {
        bounded(value, &format!("{field}.{key}"), NAME)?;
    }
    Ok(())
}

fn naming(naming: Option<&ShadowNaming>, field: &str) -> Result<(), ApiError> {
    naming.map_or(Ok(()), |naming| {
        bounded(&naming.affix, &format!("{field}.affix"), NAME)
    })
}

/// Requests with nothing free-form (numbers and enums only).
macro_rules! no_text {
    ($($request:ty),* $(,)?) => {
        $(impl Bounded for $request {
            fn bounded(&self) -> Result<(), ApiError> {
                Ok(())
            }
        })*
    };
}

no_text!(GetIdentityRequest, GetTaskRequest);

impl Bounded for CreateConnectionRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.request_id, "request_id", ID)?;
        if let Some(spec) = &self.connection {
            spec.bounded()?;
        }
        Ok(())
    }
}

impl Bounded for ConnectionSpec {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.name, "connection.name", NAME)?;
        bounded(&self.host, "connection.host", NAME)?;
        bounded(&self.username, "connection.username", NAME)?;
        bounded(&self.password, "connection.password", NAME)?;
        bounded(&self.environment, "connection.environment", NAME)?;
        options(&self.options, "connection.options")
    }
}

impl Bounded for ListConnectionsRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.page_token, "page_token", PAGE_TOKEN)?;
        bounded(&self.name_contains, "name_contains", SEARCH)?;
        each_bounded(&self.environments, "environments", NAME)
    }
}

impl Bounded for GetConnectionRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.connection_id, "connection_id", ID)
    }
}

impl Bounded for UpdateConnectionRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.connection_id, "connection_id", ID)?;
        optional(self.name.as_ref(), "name", NAME)?;
        optional(self.host.as_ref(), "host", NAME)?;
        optional(self.username.as_ref(), "username", NAME)?;
        optional(self.password.as_ref(), "password", NAME)?;
        optional(self.environment.as_ref(), "environment", NAME)?;
        options(&self.options, "options")?;
        bounded(&self.request_id, "request_id", ID)
    }
}

impl Bounded for DeleteConnectionRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.connection_id, "connection_id", ID)
    }
}

impl Bounded for TestConnectionRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        match &self.target {
            Some(test_connection_request::Target::ConnectionId(id)) => {
                bounded(id, "connection_id", ID)
            }
            Some(test_connection_request::Target::Spec(spec)) => spec.bounded(),
            None => Ok(()),
        }
    }
}

impl Bounded for ListDatabasesRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.connection_id, "connection_id", ID)?;
        bounded(&self.name_contains, "name_contains", SEARCH)
    }
}

impl Bounded for ListTablesRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.connection_id, "connection_id", ID)?;
        bounded(&self.database, "database", NAME)?;
        bounded(&self.name_contains, "name_contains", SEARCH)?;
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for StartAnalysisRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.connection_id, "connection_id", ID)?;
        bounded(&self.database, "database", NAME)?;
        each_bounded(&self.tables, "tables", NAME)?;
        naming(self.naming.as_ref(), "naming")?;
        bounded(&self.request_id, "request_id", ID)
    }
}

impl Bounded for GetAnalysisRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.analysis_id, "analysis_id", ID)?;
        bounded(&self.table_contains, "table_contains", SEARCH)?;
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for GetAnalysisTableRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.analysis_id, "analysis_id", ID)?;
        match &self.table {
            Some(get_analysis_table_request::Table::TableId(id)) => bounded(id, "table_id", ID),
            Some(get_analysis_table_request::Table::SourceTable(name)) => {
                bounded(name, "source_table", NAME)
            }
            None => Ok(()),
        }
    }
}

impl Bounded for SetTablesSkippedRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.analysis_id, "analysis_id", ID)?;
        each_bounded(&self.table_ids, "table_ids", ID)?;
        each_bounded(&self.source_tables, "source_tables", NAME)?;
        bounded(&self.expected_preview_etag, "expected_preview_etag", ID)
    }
}

impl Bounded for GetSqlPreviewRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.analysis_id, "analysis_id", ID)?;
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for RetryAnalysisRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.analysis_id, "analysis_id", ID)
    }
}

impl Bounded for SubmitTaskRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.analysis_id, "analysis_id", ID)?;
        bounded(&self.remarks, "remarks", TEXT)?;
        bounded(&self.request_id, "request_id", ID)
    }
}

impl Bounded for ListTasksRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        each_bounded(&self.connection_ids, "connection_ids", ID)?;
        bounded(&self.database_contains, "database_contains", SEARCH)?;
        bounded(&self.creator_contains, "creator_contains", SEARCH)?;
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for ListTaskTablesRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.table_contains, "table_contains", SEARCH)?;
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for ListTaskStatementsRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for ListTaskTimelineRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

/// The three decisions on a task: a comment and an idempotency key.
macro_rules! comment_and_request_id {
    ($($request:ty),* $(,)?) => {
        $(impl Bounded for $request {
            fn bounded(&self) -> Result<(), ApiError> {
                bounded(&self.comment, "comment", COMMENT)?;
                bounded(&self.request_id, "request_id", ID)
            }
        })*
    };
}

comment_and_request_id!(AbortTaskRequest, ApproveTaskRequest, RejectTaskRequest);

impl Bounded for InitiateAgainRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        optional(self.connection_id.as_ref(), "connection_id", ID)?;
        optional(self.database.as_ref(), "database", NAME)?;
        each_bounded(&self.tables, "tables", NAME)?;
        naming(self.naming.as_ref(), "naming")?;
        bounded(&self.request_id, "request_id", ID)
    }
}

impl Bounded for ListTaskLogsRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.search, "search", SEARCH)?;
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for DownloadTaskLogsRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.search, "search", SEARCH)
    }
}

impl Bounded for ClaimExecutionRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.executor_id, "executor_id", ID)
    }
}

impl Bounded for GetExecutionPlanRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.lease_token, "lease_token", ID)?;
        bounded(&self.page_token, "page_token", PAGE_TOKEN)
    }
}

impl Bounded for HeartbeatRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.lease_token, "lease_token", ID)?;
        bounded(&self.current_table, "current_table", NAME)
    }
}

impl Bounded for ReportTableResultRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.lease_token, "lease_token", ID)?;
        bounded(&self.source_table, "source_table", NAME)?;
        bounded(&self.error_code, "error_code", NAME)?;
        bounded(&self.error_message, "error_message", MESSAGE)?;
        bounded(
            &self.observed_shadow_fingerprint,
            "observed_shadow_fingerprint",
            ID,
        )
    }
}

impl Bounded for AppendLogsRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.lease_token, "lease_token", ID)?;
        for (index, entry) in self.entries.iter().enumerate() {
            bounded(
                &entry.message,
                &format!("entries[{index}].message"),
                MESSAGE,
            )?;
            bounded(&entry.table, &format!("entries[{index}].table"), NAME)?;
        }
        Ok(())
    }
}

impl Bounded for CompleteExecutionRequest {
    fn bounded(&self) -> Result<(), ApiError> {
        bounded(&self.lease_token, "lease_token", ID)?;
        bounded(&self.message, "message", MESSAGE)
    }
}
