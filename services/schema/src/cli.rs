//! `shadowctl plan` as a library: arguments, and a runner that writes the chosen format.
//!
//! The binary flattens [`PlanArgs`] into its command and calls [`run_plan`] with
//! `SHADOWSYNC_DB_PASSWORD` (so passwords need not appear in a process list). Nothing is written
//! unless the whole plan succeeded.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

use crate::catalog::SyncRange;
use crate::error::{Result, SchemaError};
use crate::introspect::{IntrospectOptions, Introspector};
use crate::naming::ShadowNaming;
use crate::plan::{AnalysisRequest, Plan, plan};

/// Output formats of `shadowctl plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A readable table of per-table results.
    Text,
    /// The full plan as JSON.
    Json,
    /// Only the change SQL, one statement per line group, each ending with `;`.
    Sql,
}

/// Arguments of `shadowctl plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Server URL, `mysql://user[:password]@host:port`; the password may instead come from
    /// SHADOWSYNC_DB_PASSWORD.
    #[arg(long)]
    pub url: String,
    /// Database (schema) holding the source tables.
    #[arg(long)]
    pub database: String,
    /// Shadow names are AFFIX + source name (default `_test_`).
    #[arg(long, value_name = "AFFIX", conflicts_with = "suffix")]
    pub prefix: Option<String>,
    /// Shadow names are source name + AFFIX (default `_t` when given without prefix).
    #[arg(long, value_name = "AFFIX")]
    pub suffix: Option<String>,
    /// Only these source tables (comma-separated); all tables when omitted.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

impl PlanArgs {
    fn naming(&self) -> Result<ShadowNaming> {
        match (&self.prefix, &self.suffix) {
            (Some(_), Some(_)) => Err(SchemaError::InvalidArgument {
                field: "prefix".into(),
                message: "--prefix and --suffix are mutually exclusive".into(),
            }),
            (_, Some(suffix)) => ShadowNaming::suffix(Some(suffix)),
            (prefix, None) => ShadowNaming::prefix(prefix.as_deref()),
        }
    }

    fn connect_options(&self, env_password: Option<String>) -> Result<MySqlConnectOptions> {
        let invalid = |message: String| SchemaError::InvalidArgument {
            field: "url".into(),
            message,
        };
        let rest = self
            .url
            .strip_prefix("mysql://")
            .or_else(|| self.url.strip_prefix("mariadb://"))
            .ok_or_else(|| invalid("must start with mysql://".into()))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let has_password = authority
            .rsplit_once('@')
            .is_some_and(|(user_info, _)| user_info.contains(':'));
        let mut options =
            MySqlConnectOptions::from_str(&self.url).map_err(|e| invalid(e.to_string()))?;
        if !has_password && let Some(password) = env_password {
            options = options.password(&password);
        }
        Ok(options)
    }
}

/// Runs the analysis and writes it to `out` in the requested format.
///
/// Fails on an invalid affix, an unknown table, a missing database or an unreachable server;
/// nothing is written in that case.
pub async fn run_plan(
    args: &PlanArgs,
    env_password: Option<String>,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let open: PoolOpener = |pool, connect| Ok(pool.connect_lazy_with(connect));
    run_plan_with(args, env_password, open, out).await
}

/// How [`run_plan_with`] opens its pool on the server (`shadowctl` passes one that refuses to
/// send the password in clear; the engine itself does not know about that gate).
pub type PoolOpener = fn(MySqlPoolOptions, MySqlConnectOptions) -> std::io::Result<MySqlPool>;

/// [`run_plan`] with the pool opened by `open`. Fails as [`run_plan`] does, and when `open`
/// fails.
pub async fn run_plan_with(
    args: &PlanArgs,
    env_password: Option<String>,
    open: PoolOpener,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let naming = args.naming()?;
    if args.database.is_empty() {
        return Err(SchemaError::InvalidArgument {
            field: "database".into(),
            message: "must not be empty".into(),
        });
    }
    let connect = args.connect_options(env_password)?;
    let options = IntrospectOptions::default();
    // The executor's sql_mode, so the printed plan is what the executor's guard reads.
    let pool = open(
        crate::session::pinned_pool(MySqlPoolOptions::new())
            .max_connections(options.parallelism as u32)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false),
        crate::session::without_driver_sql_mode(connect),
    )?;
    let introspector = Introspector::with_pool(pool.clone(), options);
    let range = if args.tables.is_empty() {
        SyncRange::All
    } else {
        SyncRange::Partial(
            args.tables
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        )
    };
    let result = introspector
        .introspect(&args.database, &range, &naming, &mut |_, _| {})
        .await;
    pool.close().await;
    let (catalog, _) = result?;
    let request = AnalysisRequest {
        range,
        naming,
        skipped: BTreeSet::new(),
    };
    let plan = plan(&catalog, &request)?;
    let text = match args.format {
        OutputFormat::Sql => plan.sql_script(),
        OutputFormat::Json => serde_json::to_string_pretty(&plan)? + "\n",
        OutputFormat::Text => text_report(&plan),
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A readable, aligned table of results.
pub fn text_report(plan: &Plan) -> String {
    let header = ["SOURCE", "SHADOW", "RESULT", "RISK", "STATEMENTS", "REASON"];
    let rows: Vec<[String; 6]> = plan
        .tables
        .iter()
        .map(|table| {
            let result = serde_json::to_value(table.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            [
                table.source.clone(),
                table.shadow.clone().unwrap_or_else(|| "-".into()),
                if table.skipped {
                    format!("{result} (skipped)")
                } else {
                    result
                },
                if table.result.needs_sync() {
                    table.risk.as_str().to_owned()
                } else {
                    "-".to_owned()
                },
                table.statements.len().to_string(),
                table.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(header.to_vec(), &mut out);
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    let count =
        |wanted: crate::plan::SyncResult| plan.tables.iter().filter(|t| t.result == wanted).count();
    let _ = writeln!(
        out,
        "\n{} tables: {} create, {} update, {} no action, {} source missing, {} unsupported; {} statements",
        plan.tables.len(),
        count(crate::plan::SyncResult::Create),
        count(crate::plan::SyncResult::Update),
        count(crate::plan::SyncResult::NoAction),
        count(crate::plan::SyncResult::SourceMissing),
        count(crate::plan::SyncResult::Unsupported),
        plan.order.len()
    );
    if !plan.order.is_empty() {
        // The statements with their hazards; `--format sql` prints the bare script.
        let _ = write!(out, "\n{}", plan.sql_preview());
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        plan: PlanArgs,
    }

    #[test]
    fn flags_parse_and_conflict() {
        let parsed = Command::try_parse_from([
            "plan",
            "--url",
            "mysql://u@h:3306",
            "--database",
            "db",
            "--suffix",
            "_s",
            "--tables",
            "a,b",
            "--format",
            "sql",
        ])
        .unwrap();
        assert_eq!(parsed.plan.tables, vec!["a", "b"]);
        assert_eq!(parsed.plan.format, OutputFormat::Sql);
        assert_eq!(
            parsed.plan.naming().unwrap(),
            ShadowNaming::suffix(Some("_s")).unwrap()
        );
        let both = Command::try_parse_from([
            "plan",
            "--url",
            "u",
            "--database",
            "d",
            "--prefix",
            "a",
            "--suffix",
            "b",
        ]);
        assert!(both.is_err());
        let defaults = Command::try_parse_from(["plan", "--url", "u", "--database", "d"]).unwrap();
        assert_eq!(defaults.plan.format, OutputFormat::Text);
        assert_eq!(defaults.plan.naming().unwrap(), ShadowNaming::default());
    }

    #[test]
    fn password_from_the_environment_only_when_the_url_has_none() {
        let mut args = Command::try_parse_from([
            "plan",
            "--url",
            "mysql://user@db.example:3306",
            "--database",
            "d",
        ])
        .unwrap()
        .plan;
        assert!(args.connect_options(Some("secret".into())).is_ok());
        args.url = "mysql://user:inline@db.example:3306".into();
        assert!(args.connect_options(Some("secret".into())).is_ok());
        args.url = "http://db.example".into();
        assert!(matches!(
            args.connect_options(None),
            Err(SchemaError::InvalidArgument { .. })
        ));
    }
}
