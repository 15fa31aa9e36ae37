//! `Analyze`: list, introspect, plan, then stream the tables in plan order in batches that stay
//! well below tonic's 4 MiB message limit, ending with a summary or a failure.

use shadowsync_common::telemetry::metrics::{KeyValue, metrics};
use std::collections::BTreeSet;
use tracing::Instrument as _;

use prost::Message as _;
use shadowsync_proto::analysis::v1::{
    AnalyzeFailure, AnalyzePhase, AnalyzeProgress, AnalyzeRequest, AnalyzeResponse, AnalyzeSummary,
    AnalyzedTable, AnalyzedTables, analyze_response::Event,
};
use shadowsync_proto::common::v1::{
    AnalysisFailureReason, SyncRange as WireRange, TableAnalysisResult,
};
use shadowsync_schema::{AnalysisRequest, Catalog, SyncRange, plan};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::AnalysisConfig;
use crate::convert;
use crate::error::AnalysisError;
use crate::target;

/// Encoded size at which a batch of tables is sent (messages stay far below 4 MiB).
const BATCH_BYTES: usize = 512 * 1024;

type Sender = mpsc::Sender<Result<AnalyzeResponse, tonic::Status>>;

/// Runs one analysis, sending its events to `out`. Returns when the stream is complete or the
/// receiver is gone.
pub async fn run(config: AnalysisConfig, request: AnalyzeRequest, out: Sender) {
    let analysis_id = request.analysis_id.clone();
    let span = tracing::info_span!(
        "analysis",
        analysis_id = %shadowsync_common::logged::logged(&analysis_id),
        shadowsync.analysis.tables = tracing::field::Empty,
        shadowsync.analysis.create = tracing::field::Empty,
        shadowsync.analysis.update = tracing::field::Empty,
        shadowsync.analysis.no_action = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let result = analyze(&config, request, &out)
        .instrument(span.clone())
        .await;
    metrics()
        .analysis_duration
        .record(started.elapsed().as_secs_f64(), &[]);
    if let Ok(summary) = &result {
        span.record("shadowsync.analysis.tables", summary.tables_total);
        span.record("shadowsync.analysis.create", summary.create_count);
        span.record("shadowsync.analysis.update", summary.update_count);
        span.record("shadowsync.analysis.no_action", summary.no_action_count);
        let counted = [
            ("CREATE", summary.create_count),
            ("UPDATE", summary.update_count),
            ("NO_ACTION", summary.no_action_count),
            ("SOURCE_MISSING", summary.source_missing_count),
            ("UNSUPPORTED", summary.unsupported_count),
        ];
        for (result, count) in counted {
            metrics().analysis_tables.add(
                u64::from(count),
                &[KeyValue::new("shadowsync.table.result", result)],
            );
        }
    } else {
        span.record("otel.status_code", "ERROR");
    }
    let last = match result {
        Ok(summary) => Ok(AnalyzeResponse {
            event: Some(Event::Summary(summary)),
        }),
        Err(AnalysisError::Target { reason, message }) => {
            warn!(parent: &span, analysis_id = %shadowsync_common::logged::logged(&analysis_id), reason = reason.as_str_name(), "analysis failed");
            Ok(AnalyzeResponse {
                event: Some(Event::Failure(AnalyzeFailure {
                    reason: reason as i32,
                    message,
                })),
            })
        }
        Err(other) => Err(other.into()),
    };
    // The receiver may have gone away (the caller cancelled): nothing left to do then.
    let _ = out.send(last).await;
}

async fn send(out: &Sender, event: Event) -> Result<(), AnalysisError> {
    out.send(Ok(AnalyzeResponse { event: Some(event) }))
        .await
        .map_err(|_| AnalysisError::Internal("the caller went away".into()))
}

fn progress(phase: AnalyzePhase, done: usize, total: usize) -> Event {
    Event::Progress(AnalyzeProgress {
        phase: phase as i32,
        tables_done: u32::try_from(done).unwrap_or(u32::MAX),
        tables_total: u32::try_from(total).unwrap_or(u32::MAX),
    })
}

fn target_error(error: &shadowsync_schema::SchemaError) -> AnalysisError {
    let (reason, message) = target::classify(error);
    AnalysisError::Target { reason, message }
}

async fn analyze(
    config: &AnalysisConfig,
    request: AnalyzeRequest,
    out: &Sender,
) -> Result<AnalyzeSummary, AnalysisError> {
    let naming = convert::naming(request.naming.as_ref())?;
    let partial = match WireRange::try_from(request.range) {
        Ok(WireRange::All) if request.tables.is_empty() => false,
        Ok(WireRange::All) => {
            return Err(AnalysisError::invalid(
                "tables",
                "must be empty for range ALL",
            ));
        }
        Ok(WireRange::Partial) if !request.tables.is_empty() => true,
        Ok(WireRange::Partial) => {
            return Err(AnalysisError::invalid(
                "tables",
                "PARTIAL needs at least one table",
            ));
        }
        _ => {
            return Err(AnalysisError::invalid(
                "range",
                "ALL or PARTIAL is required",
            ));
        }
    };
    if request.database.is_empty() {
        return Err(AnalysisError::invalid("database", "a database is required"));
    }
    let max_tables = match request.max_tables {
        0 => config.max_tables,
        n => n.min(config.max_tables),
    };
    let (pool, introspector) = target::connect(request.connection.as_ref(), config.introspect)?;
    send(out, progress(AnalyzePhase::Listing, 0, 0)).await?;

    // One cheap round trip first, to know the range's size before the expensive reads.
    let (server, base_tables) = introspector
        .server_context(&request.database)
        .await
        .map_err(|e| target_error(&e))?;
    let version = server.version.clone();
    let catalog = Catalog {
        database: request.database.clone(),
        server,
        base_tables,
        tables: Default::default(),
    };
    let (range, missing) = if partial {
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for name in &request.tables {
            match catalog.base_table_name(name) {
                Some(found) => present.push(found.to_owned()),
                None => missing.push(name.clone()),
            }
        }
        (SyncRange::Partial(present), missing)
    } else {
        (SyncRange::All, Vec::new())
    };
    let sources = catalog
        .resolve_sources(&range, &naming)
        .map_err(|unknown| AnalysisError::Internal(format!("{} tables vanished", unknown.len())))?
        .len();
    let total = sources + missing.len();
    if u32::try_from(total).unwrap_or(u32::MAX) > max_tables {
        return Err(AnalysisError::Target {
            reason: AnalysisFailureReason::TooManyTables,
            message: format!("the range has {total} tables, over the maximum of {max_tables}"),
        });
    }
    send(out, progress(AnalyzePhase::Introspecting, 0, total)).await?;

    let progress_out = out.clone();
    let mut report = move |read: usize, needed: usize| {
        // Reads cover sources and their shadows; scale to source tables for the caller.
        let done = (read * sources).checked_div(needed).unwrap_or(0);
        let _ = progress_out.try_send(Ok(AnalyzeResponse {
            event: Some(progress(AnalyzePhase::Introspecting, done, total)),
        }));
    };
    let introspection = tracing::info_span!(
        "introspect",
        db.system.name = "mysql",
        db.namespace = %shadowsync_common::logged::logged(&request.database),
        shadowsync.analysis.tables = total,
        shadowsync.introspection.round_trips = tracing::field::Empty,
    );
    let (catalog, stats) = introspector
        .introspect(&request.database, &range, &naming, &mut report)
        .instrument(introspection.clone())
        .await
        .map_err(|e| target_error(&e))?;
    introspection.record("shadowsync.introspection.round_trips", stats.round_trips);
    drop(introspection);
    pool.close().await;
    info!(
        analysis_id = %request.analysis_id,
        tables = total,
        round_trips = stats.round_trips,
        "introspected"
    );
    send(out, progress(AnalyzePhase::Planning, sources, total)).await?;

    let analysis = AnalysisRequest {
        range,
        naming: naming.clone(),
        skipped: request
            .skipped_tables
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
    };
    // Diffing thousands of tables is CPU work: keep it off the async threads.
    let planning = tracing::info_span!("diff and render", shadowsync.analysis.tables = sources);
    let planned =
        tokio::task::spawn_blocking(move || planning.in_scope(|| plan(&catalog, &analysis)))
            .await
            .map_err(|e| AnalysisError::Internal(format!("planning stopped: {e}")))?
            .map_err(|e| target_error(&e))?;
    let mut tables = convert::analyzed_tables(planned);
    let first_missing = u32::try_from(tables.len()).unwrap_or(u32::MAX);
    for (i, name) in missing.iter().enumerate() {
        let ordinal = first_missing.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
        tables.push(convert::source_missing(name, &naming, ordinal));
    }
    let summary = summarize(&tables, version);
    stream_batches(out, tables).await?;
    Ok(summary)
}

fn summarize(tables: &[AnalyzedTable], server_version: String) -> AnalyzeSummary {
    let mut summary = AnalyzeSummary {
        tables_total: u32::try_from(tables.len()).unwrap_or(u32::MAX),
        server_version,
        ..Default::default()
    };
    for table in tables {
        let result = table.plan.as_ref().map_or(0, |p| p.result);
        match TableAnalysisResult::try_from(result) {
            Ok(TableAnalysisResult::Create) => summary.create_count += 1,
            Ok(TableAnalysisResult::Update) => summary.update_count += 1,
            Ok(TableAnalysisResult::NoAction) => summary.no_action_count += 1,
            Ok(TableAnalysisResult::SourceMissing) => summary.source_missing_count += 1,
            _ => summary.unsupported_count += 1,
        }
    }
    summary
}

/// Sends the tables in order, each message holding as many as fit in [`BATCH_BYTES`] (one
/// table per message when a single table is larger).
async fn stream_batches(out: &Sender, tables: Vec<AnalyzedTable>) -> Result<(), AnalysisError> {
    let mut batch = Vec::new();
    let mut size = 0;
    for table in tables {
        let table_size = table.encoded_len();
        if !batch.is_empty() && size + table_size > BATCH_BYTES {
            send(
                out,
                Event::Tables(AnalyzedTables {
                    tables: std::mem::take(&mut batch),
                }),
            )
            .await?;
            size = 0;
        }
        size += table_size;
        batch.push(table);
    }
    if !batch.is_empty() {
        send(out, Event::Tables(AnalyzedTables { tables: batch })).await?;
    }
    Ok(())
}
