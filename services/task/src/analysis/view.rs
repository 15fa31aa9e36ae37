//! Conversions between stored analysis records and the wire: headers, rows, and the analysis
//! service's tables as rows to store.

use shadowsync_common::clock::to_timestamp;
use shadowsync_proto::analysis::v1::AnalyzedTable;
use shadowsync_proto::common::v1::{AnalysisFailureReason, ShadowNaming};
use shadowsync_proto::task::v1::{Analysis, AnalysisFailure, AnalysisTab, AnalysisTable};

use crate::store::{AnalysisRecord, ReplannedTable, RowCounts, StatementRow, TableRow};

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// The header clients poll.
pub fn analysis(record: &AnalysisRecord, counts: &RowCounts) -> Analysis {
    Analysis {
        id: record.id.clone(),
        connection_id: record.connection_id.clone(),
        connection_name: record.connection_name.clone(),
        database: record.database.clone(),
        range: i32::try_from(record.range).unwrap_or(0),
        requested_table_count: u32::try_from(record.requested_tables.len()).unwrap_or(u32::MAX),
        naming: Some(ShadowNaming {
            mode: i32::try_from(record.naming_mode).unwrap_or(0),
            affix: record.affix.clone(),
        }),
        status: i32::try_from(record.status).unwrap_or(0),
        progress_percent: count(record.progress_percent),
        tables_done: count(record.tables_done),
        tables_total: count(record.tables_total),
        synced_count: count(counts.synced),
        unsynced_count: count(counts.total - counts.synced),
        create_count: count(counts.create),
        update_count: count(counts.update),
        no_action_count: count(counts.no_action),
        unsyncable_count: count(counts.unsyncable),
        failure: record.failure.as_ref().map(|failure| AnalysisFailure {
            reason: i32::try_from(failure.reason).unwrap_or(AnalysisFailureReason::Internal as i32),
            message: failure.message.clone(),
            retryable: failure.retryable,
        }),
        creator: record.creator.clone(),
        create_time: Some(to_timestamp(record.created_at)),
        update_time: Some(to_timestamp(record.updated_at)),
        expire_time: Some(to_timestamp(record.expire_at)),
        task_id: record.task_id,
        preview_etag: record.preview.etag.clone(),
        preview_statement_count: count(record.preview.statement_count),
        preview_size_bytes: u64::try_from(record.preview.size_bytes).unwrap_or(0),
        previous_analysis_id: record.previous_analysis_id.clone(),
    }
}

/// One row of the table list.
pub fn table(row: &TableRow) -> AnalysisTable {
    AnalysisTable {
        id: row.row_no.to_string(),
        ordinal: count(row.ordinal),
        source_table: row.source_table.clone(),
        shadow_table: row.shadow_table.clone(),
        result: i32::try_from(row.result).unwrap_or(0),
        skipped: row.skipped,
        reason: row.reason.clone(),
        tab: if row.is_synced() {
            AnalysisTab::Synced as i32
        } else {
            AnalysisTab::Unsynced as i32
        },
        statement_count: if row.skipped {
            0
        } else {
            count(row.statement_count)
        },
        replanned: row.replanned,
    }
}

/// A table from the analysis service as a row to store; `row_no` is its first plan position.
pub fn analyzed(table: AnalyzedTable) -> ReplannedTable {
    let plan = table.plan.unwrap_or_default();
    let fingerprints = plan.fingerprints.unwrap_or_default();
    let ordinal = i64::from(plan.ordinal);
    let statements: Vec<StatementRow> = plan
        .statements
        .into_iter()
        .map(|statement| StatementRow {
            script_index: i64::from(statement.script_index),
            row_no: ordinal,
            statement_index: i64::from(statement.index),
            sql: statement.sql,
            expected_fingerprint_after: statement.expected_fingerprint_after,
        })
        .collect();
    ReplannedTable {
        row: TableRow {
            row_no: ordinal,
            ordinal,
            source_table: plan.source_table,
            shadow_table: plan.shadow_table,
            result: i64::from(plan.result),
            original_result: i64::from(plan.result),
            skipped: table.skipped,
            // The runner knows which skips were the user's; a re-plan keeps the stored ones.
            cascaded: false,
            replanned: false,
            reason: table.reason,
            source_ddl: table.source_ddl,
            shadow_ddl: table.shadow_ddl,
            source_fingerprint: fingerprints.source,
            shadow_fingerprint: fingerprints.shadow,
            target_fingerprint: fingerprints.target,
            depends_on: plan.depends_on,
            statement_count: i64::try_from(statements.len()).unwrap_or(0),
        },
        statements,
    }
}
