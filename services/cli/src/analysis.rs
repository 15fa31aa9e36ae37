//! `shadowctl analysis start|show|table|skip|unskip|preview`: the analysis journey
//!.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shadowsync_proto::common::v1::{
    ShadowNaming, ShadowNamingMode, SyncRange, TableAnalysisResult,
};
use shadowsync_proto::task::v1::get_analysis_table_request::Table;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_proto::task::v1::{
    Analysis, AnalysisStatus, AnalysisTab, AnalysisTable, GetAnalysisRequest, GetAnalysisResponse,
    GetAnalysisTableRequest, GetSqlPreviewRequest, GetSqlPreviewResponse, SetTablesSkippedRequest,
    StartAnalysisRequest,
};

use crate::client::ClientArgs;
use crate::output::{self, OutputFormat, proto_json, request_id};
use crate::progress::Progress;
use crate::{CliError, Exit};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AnalysisCommand {
    /// Analyse a database's tables against their shadows.
    #[command(after_help = "\
Prints the analysis; its id is what the other analysis commands and `task submit` take.

Examples:
  shadowctl analysis start --connection local --database shop --all --wait
  shadowctl analysis start --connection local --database shop --tables orders,customers
  shadowctl analysis start --connection local --database shop --all --suffix _t")]
    Start(StartArgs),
    /// Show an analysis and its tables.
    #[command(after_help = "\
Examples:
  shadowctl analysis show 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10
  shadowctl analysis show 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10 --tab synced")]
    Show {
        /// The analysis id.
        #[arg(value_name = "ANALYSIS")]
        id: String,
        /// Only the Synchronized (CREATE/UPDATE, not skipped) or Unsynchronized tab.
        #[arg(long, value_enum)]
        tab: Option<TabArg>,
    },
    /// One table's source DDL, current shadow DDL and change SQL.
    #[command(after_help = "\
Example:
  shadowctl analysis table 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10 orders")]
    Table {
        /// The analysis id.
        #[arg(value_name = "ANALYSIS")]
        id: String,
        /// The source table (as in the analysis, not its shadow).
        #[arg(value_name = "TABLE")]
        table: String,
    },
    /// Move tables to the Unsynchronized tab, with the tables whose shadows would then
    /// reference them (a shadow never references a production table); both are listed.
    #[command(after_help = "\
Example:
  shadowctl analysis skip 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10 notes audit_log")]
    Skip {
        /// The analysis id.
        #[arg(value_name = "ANALYSIS")]
        id: String,
        /// The source tables to skip.
        #[arg(required = true, value_name = "TABLE")]
        tables: Vec<String>,
    },
    /// Move skipped tables back to the Synchronized tab, with the tables skipped with them.
    #[command(after_help = "\
Example:
  shadowctl analysis unskip 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10 notes")]
    Unskip {
        /// The analysis id.
        #[arg(value_name = "ANALYSIS")]
        id: String,
        /// The skipped source tables to bring back.
        #[arg(required = true, value_name = "TABLE")]
        tables: Vec<String>,
    },
    /// The exact SQL script that would run, in order.
    #[command(after_help = "\
With --output json: the GetSqlPreviewResponse message holding every statement (all pages).

Example:
  shadowctl analysis preview 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10 > sync.sql")]
    Preview {
        /// The analysis id.
        #[arg(value_name = "ANALYSIS")]
        id: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Connection name or id.
    #[arg(long)]
    pub connection: String,
    /// The database (schema) whose tables are analysed.
    #[arg(long)]
    pub database: String,
    /// Every table of the database.
    #[arg(long, conflicts_with = "tables", required_unless_present = "tables")]
    pub all: bool,
    /// Only these tables (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Shadow name = AFFIX + table (default `_test_`).
    #[arg(long, conflicts_with = "suffix")]
    pub prefix: Option<String>,
    /// Shadow name = table + AFFIX (e.g. `_t`).
    #[arg(long)]
    pub suffix: Option<String>,
    /// Wait until the analysis finishes (a progress bar on a terminal).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TabArg {
    Synced,
    Unsynced,
}

type Client = TaskServiceClient<shadowsync_common::grpc::AuthenticatedChannel>;

pub async fn run(
    client_args: &ClientArgs,
    command: &AnalysisCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut client = TaskServiceClient::new(client_args.authenticated()?);
    match command {
        AnalysisCommand::Start(args) => {
            let connection = crate::connection::resolve(&mut client, &args.connection).await?;
            let naming = match (&args.prefix, &args.suffix) {
                (_, Some(suffix)) => ShadowNaming {
                    mode: ShadowNamingMode::Suffix as i32,
                    affix: suffix.clone(),
                },
                (prefix, None) => ShadowNaming {
                    mode: ShadowNamingMode::Prefix as i32,
                    affix: prefix.clone().unwrap_or_else(|| "_test_".into()),
                },
            };
            let range = if args.all {
                SyncRange::All
            } else {
                SyncRange::Partial
            };
            let analysis = client
                .start_analysis(StartAnalysisRequest {
                    connection_id: connection.id,
                    database: args.database.clone(),
                    range: range as i32,
                    tables: args.tables.clone(),
                    naming: Some(naming),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .analysis
                .unwrap_or_default();
            return report_started(&mut client, out, format, analysis, args.wait).await;
        }
        AnalysisCommand::Show { id, tab } => show(&mut client, out, format, id, *tab).await?,
        AnalysisCommand::Table { id, table } => {
            let response = client
                .get_analysis_table(GetAnalysisTableRequest {
                    analysis_id: id.clone(),
                    table: Some(Table::SourceTable(table.clone())),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(out, &proto_json(&response)?)?,
                OutputFormat::Table => {
                    let shadow = if response.shadow_ddl.is_empty() {
                        "(no shadow table)"
                    } else {
                        &response.shadow_ddl
                    };
                    let change = if response.change_sql.is_empty() {
                        "(nothing to do)"
                    } else {
                        &response.change_sql
                    };
                    let text = format!(
                        "-- source DDL\n{}\n\n-- shadow DDL\n{}\n\n-- change SQL\n{}\n",
                        response.source_ddl.trim_end(),
                        shadow.trim_end(),
                        change.trim_end()
                    );
                    output::write_all(out, text.as_bytes())?;
                }
            }
        }
        AnalysisCommand::Skip { id, tables } | AnalysisCommand::Unskip { id, tables } => {
            let skipped = matches!(command, AnalysisCommand::Skip { .. });
            let response = client
                .set_tables_skipped(SetTablesSkippedRequest {
                    analysis_id: id.clone(),
                    table_ids: Vec::new(),
                    source_tables: tables.clone(),
                    skipped,
                    expected_preview_etag: String::new(),
                })
                .await?
                .into_inner();
            if format == OutputFormat::Json {
                output::json(out, &proto_json(&response)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            // A shadow never references production: the tables skipped (or restored) along with
            // the named ones are said first, so nobody is surprised by them.
            let cascade = Cascade {
                verb: if skipped { "skipped" } else { "restored" },
                named: tables,
                tables: &response.cascaded_tables,
            };
            show_with(&mut client, out, format, id, None, Some(cascade)).await?;
        }
        AnalysisCommand::Preview { id } => {
            let mut page_token = String::new();
            let mut whole = GetSqlPreviewResponse::default();
            loop {
                let page = client
                    .get_sql_preview(GetSqlPreviewRequest {
                        analysis_id: id.clone(),
                        page_size: 1000,
                        page_token: page_token.clone(),
                    })
                    .await?
                    .into_inner();
                whole.statements.extend(page.statements);
                whole.total_size = page.total_size;
                whole.preview_etag = page.preview_etag;
                whole.script_sha256 = page.script_sha256;
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            match format {
                OutputFormat::Json => output::json(out, &proto_json(&whole)?)?,
                OutputFormat::Table => {
                    let mut script = String::new();
                    for statement in &whole.statements {
                        script.push_str(statement.sql.trim_end());
                        if !statement.sql.trim_end().ends_with(';') {
                            script.push(';');
                        }
                        script.push('\n');
                    }
                    output::write_all(out, script.as_bytes())?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints an analysis that was just started (`analysis start`, `task again`), after waiting for
/// it to finish when asked. The exit code fails when the analysis did.
pub(crate) async fn report_started(
    client: &mut Client,
    out: &mut dyn Write,
    format: OutputFormat,
    mut analysis: Analysis,
    wait_for_it: bool,
) -> Result<ExitCode, CliError> {
    if wait_for_it {
        analysis = wait(client, &analysis.id, format).await?;
    }
    show(client, out, format, &analysis.id, None).await?;
    if analysis.status == AnalysisStatus::Failed as i32 {
        return Ok(Exit::Unsuccessful.code());
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls until the analysis leaves PENDING/RUNNING, drawing progress on a terminal's stderr
/// (tables analysed of the total: the bar's percent and counter come from the same two numbers).
async fn wait(client: &mut Client, id: &str, format: OutputFormat) -> Result<Analysis, CliError> {
    let progress = Progress::tables(format);
    loop {
        let analysis = client
            .get_analysis(GetAnalysisRequest {
                analysis_id: id.to_string(),
                omit_tables: true,
                ..Default::default()
            })
            .await?
            .into_inner()
            .analysis
            .unwrap_or_default();
        let running = analysis.status == AnalysisStatus::Pending as i32
            || analysis.status == AnalysisStatus::Running as i32;
        progress.update(
            analysis.tables_done.into(),
            analysis.tables_total.into(),
            format!("analysis {}", status_name(analysis.status)),
        );
        if !running {
            progress.finish();
            return Ok(analysis);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `ANALYSIS_STATUS_RUNNING`, as the header, the progress bar and JSON show it.
fn status_name(status: i32) -> String {
    crate::output::enum_name(
        status,
        AnalysisStatus::try_from(status)
            .ok()
            .map(|s| s.as_str_name()),
    )
}

fn result_name(result: i32) -> String {
    TableAnalysisResult::try_from(result)
        .map(|r| r.as_str_name().to_string())
        .unwrap_or_default()
}

/// The tables a skip or an undo changed along with the ones named.
struct Cascade<'a> {
    /// `skipped` or `restored`.
    verb: &'static str,
    named: &'a [String],
    tables: &'a [AnalysisTable],
}

async fn show(
    client: &mut Client,
    out: &mut dyn Write,
    format: OutputFormat,
    id: &str,
    tab: Option<TabArg>,
) -> Result<(), CliError> {
    show_with(client, out, format, id, tab, None).await
}

/// [`show`], for people preceded by what a skip or an undo changed along with the tables
/// named.
async fn show_with(
    client: &mut Client,
    out: &mut dyn Write,
    format: OutputFormat,
    id: &str,
    tab: Option<TabArg>,
    cascade: Option<Cascade<'_>>,
) -> Result<(), CliError> {
    let tab = match tab {
        Some(TabArg::Synced) => AnalysisTab::Synced,
        Some(TabArg::Unsynced) => AnalysisTab::Unsynced,
        None => AnalysisTab::Unspecified,
    };
    let mut tables: Vec<AnalysisTable> = Vec::new();
    let mut page_token = String::new();
    let analysis = loop {
        let page = client
            .get_analysis(GetAnalysisRequest {
                analysis_id: id.to_string(),
                tab: tab as i32,
                table_contains: String::new(),
                page_size: 1000,
                page_token: page_token.clone(),
                omit_tables: false,
            })
            .await?
            .into_inner();
        tables.extend(page.tables);
        if page.next_page_token.is_empty() {
            break page.analysis.unwrap_or_default();
        }
        page_token = page.next_page_token;
    };
    if format == OutputFormat::Json {
        // Every page's tables in one GetAnalysis response.
        let response = GetAnalysisResponse {
            total_size: i32::try_from(tables.len()).unwrap_or(i32::MAX),
            analysis: Some(analysis),
            tables,
            next_page_token: String::new(),
        };
        return output::json(out, &proto_json(&response)?);
    }
    if let Some(cascade) = &cascade
        && !cascade.tables.is_empty()
    {
        let names: Vec<&str> = cascade
            .tables
            .iter()
            .map(|t| t.source_table.as_str())
            .collect();
        let line = format!(
            "{} with {}: {} (a shadow never references a production table)\n",
            cascade.verb,
            cascade.named.join(", "),
            names.join(", ")
        );
        output::write_all(out, line.as_bytes())?;
    }
    let status = status_name(analysis.status);
    // The percent shown is the counter's own, so the two never disagree.
    let percent = (u64::from(analysis.tables_done) * 100)
        .checked_div(u64::from(analysis.tables_total))
        .unwrap_or(if analysis.status == AnalysisStatus::Succeeded as i32 {
            100
        } else {
            0
        });
    let mut header = format!(
        "analysis {}  {}  {}%  {}/{} tables  synced {}  unsynced {}\n",
        analysis.id,
        status,
        percent,
        analysis.tables_done,
        analysis.tables_total,
        analysis.synced_count,
        analysis.unsynced_count
    );
    if let Some(failure) = &analysis.failure {
        header.push_str(&format!("failed: {}\n", failure.message));
    }
    header.push('\n');
    output::write_all(out, header.as_bytes())?;
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            vec![
                t.source_table.clone(),
                t.shadow_table.clone(),
                result_name(t.result),
                if t.skipped {
                    "skipped".into()
                } else {
                    String::new()
                },
                t.reason.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &["SOURCE", "SHADOW", "RESULT", "SKIPPED", "REASON"],
        &rows,
    )
}
