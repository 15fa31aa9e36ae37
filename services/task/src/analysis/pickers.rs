//! `ListDatabases` / `ListTables` for the pickers, through the analysis service (which holds no
//! credentials: the task service sends them with each call).

use shadowsync_common::auth::Identity;
use shadowsync_proto::analysis::v1 as analysis;
use shadowsync_proto::task::v1::{
    ListDatabasesRequest, ListDatabasesResponse, ListTablesRequest, ListTablesResponse, TableInfo,
};
use tonic::Code;

use super::Analyses;
use crate::error::{Result, TaskError, from_peer};

/// The analysis service's answer about the target, in the task service's terms: its messages
/// are the database's own (never a secret), so they are passed on.
fn target_error(status: &tonic::Status) -> TaskError {
    match status.code() {
        Code::NotFound => TaskError::NotFound(format!("database: {}", status.message())),
        Code::FailedPrecondition => TaskError::FailedPrecondition(status.message().to_owned()),
        Code::InvalidArgument => TaskError::invalid("connection", status.message()),
        Code::Unavailable => TaskError::Unavailable(status.message().to_owned()),
        _ => from_peer("analysis", status),
    }
}

impl Analyses {
    async fn permitted(
        &self,
        caller: &Identity,
        connection_id: &str,
        database: &str,
    ) -> Result<()> {
        if self
            .permissions
            .may_sync(caller, connection_id, database)
            .await?
        {
            Ok(())
        } else {
            Err(TaskError::PermissionDenied(
                "no shadow_table_sync permission on this connection".into(),
            ))
        }
    }

    /// A connection's databases. Fails with NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE.
    pub async fn list_databases(
        &self,
        caller: &Identity,
        request: &ListDatabasesRequest,
    ) -> Result<ListDatabasesResponse> {
        let (record, details) = self.connections.details(&request.connection_id).await?;
        self.permitted(caller, &record.id, "").await?;
        let response = self
            .analysis
            .clone()
            .list_databases(analysis::ListDatabasesRequest {
                connection: Some(details),
                name_contains: request.name_contains.clone(),
            })
            .await
            .map_err(|status| target_error(&status))?
            .into_inner();
        Ok(ListDatabasesResponse {
            databases: response.databases,
        })
    }

    /// One page of a database's tables. Fails with NOT_FOUND (connection or database),
    /// PERMISSION_DENIED, UNAVAILABLE.
    pub async fn list_tables(
        &self,
        caller: &Identity,
        request: &ListTablesRequest,
    ) -> Result<ListTablesResponse> {
        if request.database.is_empty() {
            return Err(TaskError::invalid("database", "is required"));
        }
        let (record, details) = self.connections.details(&request.connection_id).await?;
        self.permitted(caller, &record.id, &request.database)
            .await?;
        let response = self
            .analysis
            .clone()
            .list_tables(analysis::ListTablesRequest {
                connection: Some(details),
                database: request.database.clone(),
                name_contains: request.name_contains.clone(),
                page_size: request.page_size,
                page_token: request.page_token.clone(),
            })
            .await
            .map_err(|status| target_error(&status))?
            .into_inner();
        Ok(ListTablesResponse {
            tables: response
                .tables
                .into_iter()
                .map(|t| TableInfo {
                    name: t.name,
                    engine: t.engine,
                    comment: t.comment,
                })
                .collect(),
            next_page_token: response.next_page_token,
            total_size: response.total_size,
        })
    }
}
