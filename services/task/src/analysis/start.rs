//! `StartAnalysis`: validate everything that can be known up front, then store
//! the analysis as PENDING and hand it to the runner. A rejected request stores nothing.

use shadowsync_common::auth::Identity;
use shadowsync_common::clock::micros;
use shadowsync_common::logged::logged;
use shadowsync_proto::analysis::v1::ListTablesRequest;
use shadowsync_proto::common::v1::{ConnectionDetails, ShadowNamingMode, SyncRange};
use shadowsync_proto::task::v1::{Analysis, StartAnalysisRequest};
use tonic::Code;
use tracing::{info, instrument};

use super::Analyses;
use crate::error::{Result, TaskError, from_peer};
use crate::idempotency::Idempotency;
use crate::store::{AnalysisRecord, PreviewSummary, status};

/// The naming rule with its default affix, checked: 1–32 of `[A-Za-z0-9_]`.
pub fn naming(
    naming: Option<&shadowsync_proto::common::v1::ShadowNaming>,
) -> Result<(i64, String)> {
    let (mode, affix) = naming.map_or((0, ""), |n| (n.mode, n.affix.as_str()));
    let mode = match ShadowNamingMode::try_from(mode) {
        Ok(ShadowNamingMode::Suffix) => ShadowNamingMode::Suffix,
        Ok(ShadowNamingMode::Prefix | ShadowNamingMode::Unspecified) => ShadowNamingMode::Prefix,
        Err(_) => return Err(TaskError::invalid("naming.mode", "PREFIX or SUFFIX")),
    };
    let affix = match (affix, mode) {
        ("", ShadowNamingMode::Suffix) => "_t",
        ("", _) => "_test_",
        (affix, _) => affix,
    };
    let valid = (1..=32).contains(&affix.chars().count())
        && affix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(TaskError::invalid(
            "naming.affix",
            "1–32 characters of [A-Za-z0-9_]",
        ));
    }
    Ok((mode as i64, affix.to_owned()))
}

/// Where an analysis comes from when it is not a fresh start.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub previous_analysis_id: String,
    pub skips: Vec<String>,
}

impl Analyses {
    /// Validates and starts an analysis; returns at once with its PENDING header.
    ///
    /// Fails with INVALID_ARGUMENT (field named), NOT_FOUND (`connection_id`, `database`),
    /// PERMISSION_DENIED without `shadow_table_sync` permission, UNAVAILABLE when the approval
    /// service cannot answer.
    pub async fn start(
        &self,
        caller: &Identity,
        request: StartAnalysisRequest,
    ) -> Result<Analysis> {
        self.start_from(caller, request, Origin::default()).await
    }

    /// [`Analyses::start`] for Initiate Again: the new analysis names the one it follows and
    /// plans `origin.skips` as skipped from the start (names no longer found are ignored).
    #[instrument(skip_all, fields(caller = %logged(&caller.subject), connection_id = %logged(&request.connection_id)), err(Display, level = "info"))]
    pub async fn start_from(
        &self,
        caller: &Identity,
        request: StartAnalysisRequest,
        origin: Origin,
    ) -> Result<Analysis> {
        if request.connection_id.is_empty() {
            return Err(TaskError::invalid("connection_id", "is required"));
        }
        if request.database.is_empty() {
            return Err(TaskError::invalid("database", "is required"));
        }
        match SyncRange::try_from(request.range) {
            Ok(SyncRange::All) if !request.tables.is_empty() => {
                return Err(TaskError::invalid("tables", "must be empty for range ALL"));
            }
            Ok(SyncRange::Partial) if request.tables.is_empty() => {
                return Err(TaskError::invalid(
                    "tables",
                    "PARTIAL needs at least one table",
                ));
            }
            Ok(SyncRange::All | SyncRange::Partial) => {}
            _ => return Err(TaskError::invalid("range", "ALL or PARTIAL is required")),
        }
        if let Some(position) = request.tables.iter().position(String::is_empty) {
            return Err(TaskError::invalid(
                format!("tables[{position}]"),
                "is empty",
            ));
        }
        let (naming_mode, affix) = naming(request.naming.as_ref())?;
        let max = usize::try_from(self.config.max_tables).unwrap_or(usize::MAX);
        if request.tables.len() > max {
            return Err(TaskError::invalid(
                "tables",
                format!("{} tables, over the maximum of {max}", request.tables.len()),
            ));
        }
        let (connection, details) = self
            .connections
            .details(&request.connection_id)
            .await
            .map_err(|error| match error {
                TaskError::NotFound(_) => TaskError::NotFound(format!(
                    "connection_id: connection {} not found",
                    request.connection_id
                )),
                other => other,
            })?;
        if !self
            .permissions
            .may_sync(caller, &connection.id, &request.database)
            .await?
        {
            return Err(TaskError::PermissionDenied(format!(
                "no shadow_table_sync permission on connection {}",
                connection.name
            )));
        }
        self.check_database(details, &request, (naming_mode, &affix))
            .await?;

        let now = self.clock.now();
        let record = AnalysisRecord {
            id: uuid::Uuid::new_v4().to_string(),
            connection_id: connection.id.clone(),
            connection_name: connection.name.clone(),
            database: request.database.clone(),
            range: i64::from(request.range),
            requested_tables: request.tables.clone(),
            naming_mode,
            affix,
            status: status::PENDING,
            tables_done: 0,
            tables_total: 0,
            progress_percent: 0,
            failure: None,
            server_version: String::new(),
            creator: caller.subject.clone(),
            created_at: now,
            updated_at: now,
            expire_at: now.saturating_add(micros(self.config.analysis_retention)),
            task_id: 0,
            preview: PreviewSummary::default(),
            previous_analysis_id: origin.previous_analysis_id,
            attempt: 0,
            initial_skips: origin.skips,
        };
        let mut parameters = request.clone();
        parameters.request_id.clear();
        let idempotency = Idempotency::new(
            &caller.subject,
            "StartAnalysis",
            &request.request_id,
            &prost::Message::encode_to_vec(&parameters),
        );
        if let Some(idempotency) = &idempotency
            && let Some(existing) = idempotency
                .reserve(self.store.as_ref(), &record.id, now)
                .await?
        {
            let existing = self.owned(caller, &existing).await?;
            return self.header(&existing).await;
        }
        if let Err(error) = self.store.insert_analysis(&record).await {
            if let Some(idempotency) = &idempotency {
                idempotency.release(self.store.as_ref()).await;
            }
            return Err(error.into());
        }
        info!(analysis_id = %record.id, "analysis started");
        self.runner.spawn(record.id.clone());
        self.header(&record).await
    }

    /// The database must exist, and for ALL its table count must be within the maximum. A
    /// target that is unreachable or refuses access is not a rejection: the analysis is stored
    /// and fails with that reason (retryable), as the journey describes.
    async fn check_database(
        &self,
        details: ConnectionDetails,
        request: &StartAnalysisRequest,
        naming: (i64, &str),
    ) -> Result<()> {
        let listing = self
            .analysis
            .clone()
            .list_tables(ListTablesRequest {
                connection: Some(details.clone()),
                database: request.database.clone(),
                name_contains: String::new(),
                page_size: 1,
                page_token: String::new(),
            })
            .await;
        match listing {
            Ok(response) => {
                let total = u32::try_from(response.into_inner().total_size).unwrap_or(0);
                if request.range != SyncRange::All as i32 || total <= self.config.max_tables {
                    return Ok(());
                }
                // Shadows are not sources: count exactly (rare, so the extra pages are fine).
                let sources = self.count_sources(&details, request, naming).await?;
                if sources > self.config.max_tables as usize {
                    return Err(TaskError::invalid(
                        "range",
                        format!(
                            "database {} has {sources} source tables, over the maximum of {}",
                            request.database, self.config.max_tables
                        ),
                    ));
                }
                Ok(())
            }
            Err(status) if status.code() == Code::NotFound => Err(TaskError::NotFound(format!(
                "database: {} does not exist",
                request.database
            ))),
            Err(status)
                if matches!(status.code(), Code::Unavailable | Code::FailedPrecondition) =>
            {
                Ok(())
            }
            Err(status) => Err(from_peer("analysis", &status)),
        }
    }
}

impl Analyses {
    /// Source tables of the database under `naming`: every base table that is not the shadow
    /// of another one (what range ALL covers).
    async fn count_sources(
        &self,
        details: &ConnectionDetails,
        request: &StartAnalysisRequest,
        naming: (i64, &str),
    ) -> Result<usize> {
        let mut names = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .analysis
                .clone()
                .list_tables(ListTablesRequest {
                    connection: Some(details.clone()),
                    database: request.database.clone(),
                    name_contains: String::new(),
                    page_size: 5_000,
                    page_token: token,
                })
                .await
                .map_err(|status| from_peer("analysis", &status))?
                .into_inner();
            names.extend(page.tables.into_iter().map(|t| t.name));
            if page.next_page_token.is_empty() {
                return Ok(count_sources(&names, naming));
            }
            token = page.next_page_token;
        }
    }
}

/// Names that are not `affix + other` (prefix) or `other + affix` (suffix) for another listed
/// name; compared case-insensitively, as MySQL does on most platforms.
pub fn count_sources(names: &[String], (mode, affix): (i64, &str)) -> usize {
    let lower: std::collections::HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let affix = affix.to_lowercase();
    names
        .iter()
        .filter(|name| {
            let name = name.to_lowercase();
            let source = if mode == ShadowNamingMode::Suffix as i64 {
                name.strip_suffix(&affix)
            } else {
                name.strip_prefix(&affix)
            };
            !source.is_some_and(|source| !source.is_empty() && lower.contains(source))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadows_are_not_sources() {
        let names: Vec<String> = [
            "orders",
            "_test_orders",
            "_test_lonely",
            "Items",
            "_TEST_items",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(count_sources(&names, (1, "_test_")), 3);
        assert_eq!(count_sources(&names, (2, "_t")), 5);
    }

    #[test]
    fn naming_defaults_and_validation() {
        assert_eq!(naming(None).unwrap(), (1, "_test_".into()));
        let suffix = shadowsync_proto::common::v1::ShadowNaming {
            mode: ShadowNamingMode::Suffix as i32,
            affix: String::new(),
        };
        assert_eq!(naming(Some(&suffix)).unwrap(), (2, "_t".into()));
        for bad in ["a-b", "x`", &"a".repeat(33)] {
            let rule = shadowsync_proto::common::v1::ShadowNaming {
                mode: 1,
                affix: bad.to_string(),
            };
            let error = naming(Some(&rule)).unwrap_err();
            assert!(error.to_string().starts_with("naming.affix"));
        }
    }
}
