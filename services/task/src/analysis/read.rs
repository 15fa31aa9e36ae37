//! Reads of an analysis: the header with one page of rows, one table's details, and the SQL
//! preview in pages.

use shadowsync_common::auth::Identity;
use shadowsync_proto::common::v1::{PlannedStatement, TableFingerprints};
use shadowsync_proto::task::v1::{
    AnalysisTab, GetAnalysisRequest, GetAnalysisResponse, GetAnalysisTableRequest,
    GetAnalysisTableResponse, GetSqlPreviewRequest, GetSqlPreviewResponse, ScriptStatement,
    get_analysis_table_request::Table,
};

use super::{Analyses, view};
use crate::error::{Result, TaskError};
use crate::page::{PageToken, page_size};
use crate::store::{RowFilter, Tab, status};

/// A page of the preview ends before this many bytes of SQL (the contract's 1 MiB).
const PREVIEW_PAGE_BYTES: usize = 1024 * 1024 - 64 * 1024;

impl Analyses {
    /// The header and one page of rows in plan order. Fails with NOT_FOUND.
    pub async fn get(
        &self,
        caller: &Identity,
        request: &GetAnalysisRequest,
    ) -> Result<GetAnalysisResponse> {
        let record = self.owned(caller, &request.analysis_id).await?;
        let analysis = self.header(&record).await?;
        if request.omit_tables {
            return Ok(GetAnalysisResponse {
                analysis: Some(analysis),
                ..Default::default()
            });
        }
        let tab = match AnalysisTab::try_from(request.tab) {
            Ok(AnalysisTab::Synced) => Tab::Synced,
            Ok(AnalysisTab::Unsynced) => Tab::Unsynced,
            Ok(AnalysisTab::Unspecified) => Tab::Both,
            Err(_) => return Err(TaskError::invalid("tab", "SYNCED, UNSYNCED or unset")),
        };
        let binding = format!(
            "{}\u{0}{}\u{0}{}",
            record.id, request.tab, request.table_contains
        );
        let offset = PageToken::parse(&request.page_token, &binding)?;
        let filter = RowFilter {
            tab,
            table_contains: request.table_contains.clone(),
            offset,
            limit: page_size(request.page_size, 100, 1_000),
        };
        let (rows, total) = self.store.list_rows(&record.id, &filter).await?;
        let next = offset + i64::try_from(rows.len()).unwrap_or(0);
        Ok(GetAnalysisResponse {
            analysis: Some(analysis),
            tables: rows.iter().map(view::table).collect(),
            next_page_token: PageToken::next(next, total, &binding),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// One table's DDLs and change SQL (the "View" dialog). Fails with NOT_FOUND.
    pub async fn get_table(
        &self,
        caller: &Identity,
        request: &GetAnalysisTableRequest,
    ) -> Result<GetAnalysisTableResponse> {
        let record = self.owned(caller, &request.analysis_id).await?;
        let row = match &request.table {
            Some(Table::TableId(id)) => {
                let row_no = id
                    .parse::<i64>()
                    .map_err(|_| TaskError::NotFound(format!("table {id} not found")))?;
                self.store.get_row(&record.id, Some(row_no), "").await?
            }
            Some(Table::SourceTable(name)) => self.store.get_row(&record.id, None, name).await?,
            None => {
                return Err(TaskError::invalid(
                    "table",
                    "table_id or source_table is required",
                ));
            }
        }
        .ok_or_else(|| TaskError::NotFound("table not found in this analysis".into()))?;
        let statements = if row.skipped {
            Vec::new()
        } else {
            self.store.row_statements(&record.id, row.row_no).await?
        };
        let change_sql = if statements.is_empty() {
            String::new()
        } else {
            let joined: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
            format!("{};", joined.join(";\n"))
        };
        Ok(GetAnalysisTableResponse {
            table: Some(view::table(&row)),
            source_ddl: row.source_ddl.clone(),
            shadow_ddl: row.shadow_ddl.clone(),
            change_sql,
            statements: statements
                .iter()
                .map(|s| PlannedStatement {
                    index: u32::try_from(s.statement_index).unwrap_or(0),
                    sql: s.sql.clone(),
                    expected_fingerprint_after: s.expected_fingerprint_after.clone(),
                    script_index: u32::try_from(s.script_index).unwrap_or(0),
                })
                .collect(),
            fingerprints: Some(TableFingerprints {
                source: row.source_fingerprint,
                shadow: row.shadow_fingerprint,
                target: row.target_fingerprint,
            }),
        })
    }

    /// One page of the exact ordered script of the non-skipped rows.
    ///
    /// Fails with NOT_FOUND, or FAILED_PRECONDITION when the analysis is not SUCCEEDED /
    /// SUBMITTED or the token belongs to an older preview.
    pub async fn preview(
        &self,
        caller: &Identity,
        request: &GetSqlPreviewRequest,
    ) -> Result<GetSqlPreviewResponse> {
        let record = self.owned(caller, &request.analysis_id).await?;
        if !matches!(record.status, status::SUCCEEDED | status::SUBMITTED) {
            return Err(TaskError::FailedPrecondition(format!(
                "analysis {} has no preview yet",
                record.id
            )));
        }
        let etag = &record.preview.etag;
        let from = PageToken::parse(&request.page_token, etag).map_err(|_| {
            TaskError::FailedPrecondition(
                "page_token belongs to an older preview; restart from the first page".into(),
            )
        })?;
        let limit = page_size(request.page_size, 500, 5_000);
        // One more than asked, to know whether another page follows.
        let mut lines = self.store.script_page(&record.id, from, limit + 1).await?;
        let mut more = i64::try_from(lines.len()).unwrap_or(0) > limit;
        lines.truncate(usize::try_from(limit).unwrap_or(0));
        let mut statements = Vec::with_capacity(lines.len());
        let mut bytes = 0;
        for line in lines {
            bytes += line.sql.len() + line.source_table.len() + line.shadow_table.len();
            if bytes > PREVIEW_PAGE_BYTES && !statements.is_empty() {
                more = true;
                break;
            }
            statements.push(ScriptStatement {
                index: u32::try_from(line.script_index).unwrap_or(0),
                source_table: line.source_table,
                shadow_table: line.shadow_table,
                sql: line.sql,
            });
        }
        let next = statements.last().map_or(from, |s| i64::from(s.index) + 1);
        Ok(GetSqlPreviewResponse {
            statements,
            next_page_token: if more {
                PageToken::encode(next, etag)
            } else {
                String::new()
            },
            total_size: i32::try_from(record.preview.statement_count).unwrap_or(i32::MAX),
            preview_etag: etag.clone(),
            script_sha256: record.preview.sha256.clone(),
        })
    }
}
