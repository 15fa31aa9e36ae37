//! `ListTables` and `ListDatabases`: cheap reads for the pickers.
//!
//! Table names come from the same one-round-trip read the analysis starts with; engine and
//! comment (which make the server open each table) are read for one page's names only.

use futures::TryStreamExt;
use shadowsync_proto::analysis::v1::{
    ListDatabasesRequest, ListDatabasesResponse, ListTablesRequest, ListTablesResponse, TableInfo,
};
use shadowsync_proto::common::v1::AnalysisFailureReason;
use shadowsync_schema::IntrospectOptions;
use sqlx::{AssertSqlSafe, Row};

use crate::error::AnalysisError;
use crate::target;

const DEFAULT_PAGE: usize = 200;
const MAX_PAGE: usize = 5_000;

/// Schemas every MySQL-family server has, never offered for analysis.
const SYSTEM_SCHEMAS: &[&str] = &[
    "information_schema",
    "mysql",
    "performance_schema",
    "sys",
    "oceanbase",
    "__recyclebin",
    "__public",
];

fn target_error(error: &sqlx::Error) -> AnalysisError {
    let (reason, message) = target::classify_sqlx(error);
    AnalysisError::Target { reason, message }
}

/// Page tokens are the offset of the next page, bound to the filter so a token is not reused
/// with another one.
fn page_token(offset: usize, filter: &str) -> String {
    format!("{offset}:{}", filter.len())
}

fn parse_token(token: &str, filter: &str) -> Result<usize, AnalysisError> {
    if token.is_empty() {
        return Ok(0);
    }
    let invalid = || AnalysisError::invalid("page_token", "not a token of this listing");
    let (offset, length) = token.split_once(':').ok_or_else(invalid)?;
    if length != filter.len().to_string() {
        return Err(invalid());
    }
    offset.parse().map_err(|_| invalid())
}

/// One page of a database's base tables, sorted by name.
///
/// Fails with NOT_FOUND for a missing database, UNAVAILABLE when the server is unreachable,
/// FAILED_PRECONDITION when access is denied.
pub async fn list_tables(
    request: ListTablesRequest,
    options: IntrospectOptions,
) -> Result<ListTablesResponse, AnalysisError> {
    if request.database.is_empty() {
        return Err(AnalysisError::invalid("database", "a database is required"));
    }
    let page_size = match usize::try_from(request.page_size) {
        Ok(0) | Err(_) => DEFAULT_PAGE,
        Ok(n) => n.min(MAX_PAGE),
    };
    let offset = parse_token(&request.page_token, &request.name_contains)?;
    let (pool, introspector) = target::connect(request.connection.as_ref(), options)?;
    let (_, names) = introspector
        .server_context(&request.database)
        .await
        .map_err(|e| {
            let (reason, message) = target::classify(&e);
            AnalysisError::Target { reason, message }
        })?;
    let needle = request.name_contains.to_lowercase();
    let matching: Vec<String> = names
        .into_iter()
        .filter(|name| name.to_lowercase().contains(&needle))
        .collect();
    let page: Vec<String> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .cloned()
        .collect();
    let mut tables: Vec<TableInfo> = page
        .iter()
        .map(|name| TableInfo {
            name: name.clone(),
            ..Default::default()
        })
        .collect();
    if !page.is_empty() {
        let placeholders = vec!["?"; page.len()].join(", ");
        let sql = format!(
            "SELECT TABLE_NAME, COALESCE(ENGINE, ''), COALESCE(TABLE_COMMENT, '') \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({placeholders})"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(&request.database);
        for name in &page {
            query = query.bind(name);
        }
        let rows: Vec<_> = query
            .fetch(&pool)
            .try_collect()
            .await
            .map_err(|e| target_error(&e))?;
        for row in rows {
            let name: String = row.try_get(0).map_err(|e| target_error(&e))?;
            if let Some(table) = tables.iter_mut().find(|t| t.name == name) {
                table.engine = row.try_get(1).unwrap_or_default();
                table.comment = row.try_get(2).unwrap_or_default();
            }
        }
    }
    pool.close().await;
    let next = offset + tables.len();
    Ok(ListTablesResponse {
        tables,
        next_page_token: if next < matching.len() {
            page_token(next, &request.name_contains)
        } else {
            String::new()
        },
        total_size: i32::try_from(matching.len()).unwrap_or(i32::MAX),
    })
}

/// The server's databases, system schemas excluded, sorted.
///
/// Fails like [`list_tables`].
pub async fn list_databases(
    request: ListDatabasesRequest,
    options: IntrospectOptions,
) -> Result<ListDatabasesResponse, AnalysisError> {
    let (pool, _) = target::connect(request.connection.as_ref(), options)?;
    let rows =
        sqlx::query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
            .fetch_all(&pool)
            .await
            .map_err(|e| target_error(&e))?;
    pool.close().await;
    let needle = request.name_contains.to_lowercase();
    let mut databases = Vec::new();
    for row in rows {
        let name: String = row.try_get(0).map_err(|e| target_error(&e))?;
        if !SYSTEM_SCHEMAS.contains(&name.to_lowercase().as_str())
            && name.to_lowercase().contains(&needle)
        {
            databases.push(name);
        }
    }
    Ok(ListDatabasesResponse { databases })
}

/// True for errors that mean "no such database" (kept for callers matching reasons).
pub fn is_missing_database(error: &AnalysisError) -> bool {
    matches!(
        error,
        AnalysisError::Target {
            reason: AnalysisFailureReason::DatabaseNotFound,
            ..
        }
    )
}
