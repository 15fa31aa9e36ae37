//! Reads: GetTask (with the process timeline), ListTasks, the paged settings, timeline and log,
//! and the log download streamed in pages so a log of any size never sits in memory whole.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shadowsync_common::auth::Identity;
use shadowsync_common::clock::{from_timestamp, micros};
use shadowsync_common::error::ApiError;
use shadowsync_proto::common::v1::SortDirection;
use shadowsync_proto::task::v1::*;
use tokio::sync::mpsc;

use super::{Tasks, task_view};
use crate::error::{Result, TaskError};
use crate::page::{PageToken, page_size};
use crate::store::lifecycle::{TaskRecord, principals_of};
use crate::store::like_pattern;
use crate::store::task_list::{TaskQuery, TaskSort, sort_key};
use crate::store::task_reads::TaskTableFilter;

/// GetTask shows at most this many TABLE_FINISHED entries before truncating.
const TIMELINE_TABLE_CAP: usize = 500;
/// Log lines read per page of a download.
const DOWNLOAD_PAGE: i64 = 2_000;
/// Download chunks end on a line boundary below this size.
const CHUNK_LIMIT: usize = 60 * 1024;

/// A ListTasks token: the last row's (sort key, id) and the start of the created-time window
/// the listing began with (pinned so the default "last 48 hours" does not slide between pages
/// and drop tasks that were in it); the window is covered by the binding hash too.
fn keyset_token(key: i64, id: i64, window: Option<i64>, binding: &str) -> String {
    let window = window.map_or(String::new(), |start| start.to_string());
    let inner = PageToken::encode(id, &format!("{binding}|{window}"));
    URL_SAFE_NO_PAD.encode(format!("{key}/{window}/{inner}"))
}

/// A parsed ListTasks token: (sort key, id) and the pinned window start.
type Keyset = ((i64, i64), Option<i64>);

fn parse_keyset(token: &str, binding: &str) -> Result<Option<Keyset>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || TaskError::invalid("page_token", "not a token of this listing");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (key, rest) = text.split_once('/').ok_or_else(invalid)?;
    let (window, inner) = rest.split_once('/').ok_or_else(invalid)?;
    let key: i64 = key.parse().map_err(|_| invalid())?;
    let id = PageToken::parse(inner, &format!("{binding}|{window}"))?;
    let window = if window.is_empty() {
        None
    } else {
        Some(window.parse().map_err(|_| invalid())?)
    };
    Ok(Some(((key, id), window)))
}

fn min_level(filter: i32) -> i64 {
    match LogLevelFilter::try_from(filter) {
        Ok(LogLevelFilter::Alert) => LogLevel::Warn as i64,
        _ => LogLevel::Info as i64,
    }
}

fn search_pattern(search: &str) -> String {
    if search.is_empty() {
        String::new()
    } else {
        like_pattern(search)
    }
}

/// One line of a downloaded log.
pub fn log_line(entry: &TaskLogEntry) -> String {
    let time = entry
        .time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp_micros(from_timestamp(t)))
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default();
    let level = LogLevel::try_from(entry.level)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("LOG_LEVEL_")
        .to_owned();
    if entry.table.is_empty() {
        format!("{time} {level} {}\n", entry.message)
    } else {
        format!("{time} {level} [{}] {}\n", entry.table, entry.message)
    }
}

impl Tasks {
    pub async fn get(&self, caller: &Identity, id: i64) -> Result<GetTaskResponse> {
        let record = self.visible(caller, id).await?;
        let task = self.view(caller, &record).await?;
        let mut timeline = Vec::new();
        let mut after = 0i64;
        loop {
            let (page, _) = self.store.timeline(id, after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = i64::try_from(last.sequence).unwrap_or(i64::MAX);
            timeline.extend(page);
        }
        let finished = |e: &TimelineEntry| e.kind == TimelineEntryKind::TableFinished as i32;
        let table_entries = timeline.iter().filter(|e| finished(e)).count();
        let truncated = table_entries > TIMELINE_TABLE_CAP;
        if truncated {
            let mut kept_finished = 0usize;
            let keep_last = table_entries - 100;
            timeline.retain(|e| {
                if !finished(e) {
                    return true;
                }
                kept_finished += 1;
                e.table_status == TableExecutionStatus::Failed as i32 || kept_finished > keep_last
            });
        }
        if let Some(wait) = task.approval_wait.clone() {
            timeline.push(TimelineEntry {
                kind: TimelineEntryKind::ApprovalPending as i32,
                node_index: wait.node_index,
                node_name: wait.node_name,
                candidate_users: wait.candidate_users,
                candidate_roles: wait.candidate_roles,
                deadline: wait.deadline,
                ..TimelineEntry::default()
            });
        }
        Ok(GetTaskResponse {
            task: Some(task),
            timeline,
            timeline_truncated: truncated,
        })
    }

    pub async fn list(
        &self,
        caller: &Identity,
        request: &ListTasksRequest,
    ) -> Result<ListTasksResponse> {
        let principals = principals_of(&caller.subject, &caller.roles);
        let sort = match TaskSortField::try_from(request.sort_field) {
            Ok(TaskSortField::Id) => TaskSort::Id,
            Ok(TaskSortField::Status) => TaskSort::Status,
            Ok(TaskSortField::CreateTime | TaskSortField::Unspecified) => TaskSort::Created,
            Err(_) => return Err(TaskError::invalid("sort_field", "unknown sort field")),
        };
        let descending = !matches!(
            SortDirection::try_from(request.sort_direction),
            Ok(SortDirection::Ascending)
        );
        let mut statuses = Vec::new();
        for (index, value) in request.statuses.iter().enumerate() {
            match TaskStatus::try_from(*value) {
                Ok(status) if status != TaskStatus::Unspecified => {
                    statuses.push(status);
                }
                _ => {
                    return Err(TaskError::invalid(
                        format!("statuses[{index}]"),
                        "unknown status",
                    ));
                }
            }
        }
        if !matches!(
            TaskType::try_from(request.r#type),
            Ok(TaskType::Unspecified | TaskType::ShadowTableSync)
        ) {
            return Err(TaskError::invalid("type", "unknown task type"));
        }
        let scope = TaskScope::try_from(request.scope).unwrap_or(TaskScope::Unspecified);
        let binding = format!(
            "{:?}|{:?}|{}|{}|{:?}|{}|{:?}|{:?}|{:?}|{}|{}|{}",
            scope,
            request.connection_ids,
            request.database_contains,
            request.creator_contains,
            request.statuses,
            request.r#type,
            request.create_time_after.as_ref().map(from_timestamp),
            request.create_time_before.as_ref().map(from_timestamp),
            sort,
            descending,
            caller.subject,
            // The default window moves with time; the token pins where the first page had it.
            if request.create_time_after.is_none() && request.create_time_before.is_none() {
                "default-window"
            } else {
                "explicit"
            }
        );
        let keyset = parse_keyset(&request.page_token, &binding)?;
        let after = keyset.map(|(after, _)| after);
        let (created_after, created_before) =
            match (&request.create_time_after, &request.create_time_before) {
                (None, None) => {
                    let pinned = keyset.and_then(|(_, window)| window);
                    let start = pinned.unwrap_or_else(|| {
                        self.clock.now() - micros(std::time::Duration::from_secs(48 * 3600))
                    });
                    (Some(start), None)
                }
                (after, before) => (
                    after.as_ref().map(from_timestamp),
                    before.as_ref().map(from_timestamp),
                ),
            };
        let limit = page_size(request.page_size, 20, 500);
        let query = TaskQuery {
            viewer: (!caller.is_admin()).then(|| (caller.subject.clone(), principals.clone())),
            created_by: (scope == TaskScope::CreatedByMe).then(|| caller.subject.clone()),
            awaiting: (scope == TaskScope::AwaitingMyApproval)
                .then(|| (principals.clone(), caller.subject.clone())),
            connection_ids: request.connection_ids.clone(),
            database_pattern: search_pattern(&request.database_contains),
            creator_pattern: search_pattern(&request.creator_contains),
            statuses,
            created_after,
            created_before,
            sort,
            descending,
            after,
            limit: limit + 1,
        };
        let (mut records, total) = self.store.list_tasks(&query).await?;
        let more = i64::try_from(records.len()).unwrap_or(0) > limit;
        records.truncate(usize::try_from(limit).unwrap_or(0));
        let next_page_token = match records.last() {
            Some(last) if more => {
                keyset_token(sort_key(last, sort), last.id, created_after, &binding)
            }
            _ => String::new(),
        };
        // Progress and "may I approve it" for the whole page in two queries, not per task.
        let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        let mut progress = self.store.progress_of(&ids).await?;
        let approving: Vec<i64> = records
            .iter()
            .filter(|r| r.status == TaskStatus::Approving && r.creator != caller.subject)
            .map(|r| r.id)
            .collect();
        let candidate_of = self
            .store
            .current_principal_of(&approving, &principals)
            .await?;
        let tasks = records
            .iter()
            .map(|record| {
                let progress = progress.remove(&record.id).unwrap_or_default();
                task_view(record, caller, candidate_of.contains(&record.id), progress)
            })
            .collect();
        Ok(ListTasksResponse {
            tasks,
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    pub async fn list_tables(
        &self,
        caller: &Identity,
        request: &ListTaskTablesRequest,
    ) -> Result<ListTaskTablesResponse> {
        self.visible(caller, request.task_id).await?;
        let binding = format!(
            "{}|{}|{:?}|{}",
            request.task_id, request.tab, request.statuses, request.table_contains
        );
        let after = PageToken::parse(&request.page_token, &binding)?;
        let synced = match AnalysisTab::try_from(request.tab) {
            Ok(AnalysisTab::Synced) => Some(true),
            Ok(AnalysisTab::Unsynced) => Some(false),
            _ => None,
        };
        let limit = page_size(request.page_size, 100, 1_000);
        let filter = TaskTableFilter {
            synced,
            statuses: request.statuses.clone(),
            pattern: search_pattern(&request.table_contains),
            after_ordinal: if request.page_token.is_empty() {
                -1
            } else {
                after
            },
            limit: limit + 1,
        };
        let (mut rows, total) = self.store.task_tables(request.task_id, &filter).await?;
        let more = i64::try_from(rows.len()).unwrap_or(0) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next_page_token = match rows.last() {
            Some(last) if more => PageToken::encode(i64::from(last.view.ordinal), &binding),
            _ => String::new(),
        };
        Ok(ListTaskTablesResponse {
            tables: rows.into_iter().map(|r| r.view).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    pub async fn list_statements(
        &self,
        caller: &Identity,
        request: &ListTaskStatementsRequest,
    ) -> Result<ListTaskStatementsResponse> {
        let record = self.visible(caller, request.task_id).await?;
        let binding = format!("statements|{}", request.task_id);
        let from = PageToken::parse(&request.page_token, &binding)?;
        let limit = page_size(request.page_size, 500, 5_000);
        let mut statements = self
            .store
            .task_statements(request.task_id, from, limit)
            .await?;
        // Pages also end before 1 MiB.
        let mut size = 0usize;
        if let Some(cut) = statements.iter().position(|s| {
            size += s.sql.len();
            size > 1024 * 1024
        }) {
            statements.truncate(cut.max(1));
        }
        let next = statements
            .last()
            .map_or(record.statement_count, |s| i64::from(s.index) + 1);
        Ok(ListTaskStatementsResponse {
            next_page_token: PageToken::next(next, record.statement_count, &binding),
            statements,
            total_size: i32::try_from(record.statement_count).unwrap_or(i32::MAX),
        })
    }

    pub async fn list_timeline(
        &self,
        caller: &Identity,
        request: &ListTaskTimelineRequest,
    ) -> Result<ListTaskTimelineResponse> {
        self.visible(caller, request.task_id).await?;
        let binding = format!("timeline|{}", request.task_id);
        let after = PageToken::parse(&request.page_token, &binding)?;
        let limit = page_size(request.page_size, 200, 1_000);
        let (entries, total) = self.store.timeline(request.task_id, after, limit).await?;
        let last = entries
            .last()
            .map_or(total, |e| i64::try_from(e.sequence).unwrap_or(i64::MAX));
        Ok(ListTaskTimelineResponse {
            entries,
            next_page_token: PageToken::next(last, total, &binding),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    pub async fn list_logs(
        &self,
        caller: &Identity,
        request: &ListTaskLogsRequest,
    ) -> Result<ListTaskLogsResponse> {
        self.visible(caller, request.task_id).await?;
        let binding = format!(
            "logs|{}|{}|{}|{}",
            request.task_id, request.level_filter, request.search, request.after_sequence
        );
        let from_token = PageToken::parse(&request.page_token, &binding)?;
        let listing_after = i64::try_from(request.after_sequence).unwrap_or(i64::MAX);
        let after = from_token.max(listing_after);
        let limit = page_size(request.page_size, 200, 2_000);
        let pattern = search_pattern(&request.search);
        let (mut entries, total) = self
            .store
            .logs(
                request.task_id,
                min_level(request.level_filter),
                &pattern,
                after,
                limit + 1,
                Some(listing_after),
            )
            .await?;
        let more = i64::try_from(entries.len()).unwrap_or(0) > limit;
        entries.truncate(usize::try_from(limit).unwrap_or(0));
        let next_page_token = match entries.last() {
            Some(last) if more => {
                PageToken::encode(i64::try_from(last.sequence).unwrap_or(i64::MAX), &binding)
            }
            _ => String::new(),
        };
        Ok(ListTaskLogsResponse {
            entries,
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// Streams the (filtered) log as text chunks through a small channel: pages are read as
    /// the client consumes, so memory stays constant for any size.
    pub async fn download_logs(
        &self,
        caller: &Identity,
        request: DownloadTaskLogsRequest,
    ) -> Result<mpsc::Receiver<std::result::Result<DownloadTaskLogsResponse, tonic::Status>>> {
        let record: TaskRecord = self.visible(caller, request.task_id).await?;
        let (sender, receiver) = mpsc::channel(4);
        let store = self.store.clone();
        let level = min_level(request.level_filter);
        let pattern = search_pattern(&request.search);
        tokio::spawn(async move {
            let mut after = 0i64;
            let mut chunk = String::new();
            loop {
                let page = store
                    .logs(record.id, level, &pattern, after, DOWNLOAD_PAGE, None)
                    .await;
                let entries = match page {
                    Ok((entries, _)) => entries,
                    Err(error) => {
                        let status = ApiError::from(TaskError::Store(error)).into();
                        let _ = sender.send(Err(status)).await;
                        return;
                    }
                };
                let Some(last) = entries.last() else { break };
                after = i64::try_from(last.sequence).unwrap_or(i64::MAX);
                for entry in &entries {
                    let line = log_line(entry);
                    if !chunk.is_empty() && chunk.len() + line.len() > CHUNK_LIMIT {
                        let text = std::mem::take(&mut chunk);
                        if sender
                            .send(Ok(DownloadTaskLogsResponse { text }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    chunk.push_str(&line);
                }
            }
            if !chunk.is_empty() {
                let _ = sender
                    .send(Ok(DownloadTaskLogsResponse { text: chunk }))
                    .await;
            }
        });
        Ok(receiver)
    }
}
