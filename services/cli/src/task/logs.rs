//! `shadowctl task logs ID [--alert] [--grep TEXT] [--follow | --download FILE]`.
//!
//! Printing goes page by page and a download chunk by chunk, so a log of any size runs in
//! constant memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use shadowsync_proto::task::v1::{
    DownloadTaskLogsRequest, DownloadTaskLogsResponse, GetTaskRequest, ListTaskLogsRequest,
    ListTaskLogsResponse, LogLevel, LogLevelFilter, TaskLogEntry,
};
use tokio::io::AsyncWriteExt as _;

use super::{Client, is_final, outcome};
use crate::CliError;
use crate::output::enum_name;
use crate::output::{self, OutputFormat, local_time, proto_json};

/// How often `--follow` asks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  shadowctl task logs 42
  shadowctl task logs 42 --follow          # exits 0 on EXECUTION_SUCCEEDED, 8 otherwise
  shadowctl task logs 42 --alert --grep orders
  shadowctl task logs 42 --download task-42.log")]
pub struct LogsArgs {
    /// The task id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Only alert lines (WARN and ERROR).
    #[arg(long)]
    pub alert: bool,
    /// Only lines whose message contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
    /// Keep printing new lines until the task reaches a final status; then exit by its outcome
    /// (0 EXECUTION_SUCCEEDED, 8 otherwise).
    #[arg(long, conflicts_with = "download")]
    pub follow: bool,
    /// Write the log to FILE (as text, streamed) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub download: Option<PathBuf>,
}

impl LogsArgs {
    fn level_filter(&self) -> LogLevelFilter {
        if self.alert {
            LogLevelFilter::Alert
        } else {
            LogLevelFilter::All
        }
    }
}

pub async fn run(
    client: &mut Client,
    out: &mut dyn Write,
    format: OutputFormat,
    args: &LogsArgs,
) -> Result<ExitCode, CliError> {
    if let Some(path) = &args.download {
        let chunks = client
            .download_task_logs(DownloadTaskLogsRequest {
                task_id: args.id,
                level_filter: args.level_filter() as i32,
                search: args.grep.clone().unwrap_or_default(),
            })
            .await?
            .into_inner();
        let bytes = download(chunks, path).await?;
        match format {
            OutputFormat::Json => output::json(
                out,
                &serde_json::json!({ "file": path.display().to_string(), "bytes": bytes }),
            )?,
            OutputFormat::Table => output::write_all(
                out,
                format!("wrote {bytes} bytes to {}\n", path.display()).as_bytes(),
            )?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut source = Service {
        client,
        template: ListTaskLogsRequest {
            task_id: args.id,
            level_filter: args.level_filter() as i32,
            search: args.grep.clone().unwrap_or_default(),
            page_size: 1_000,
            ..Default::default()
        },
    };
    let mut printer = Printer { out, format };
    if args.follow {
        let status = follow(&mut source, &mut printer, FOLLOW_INTERVAL).await?;
        return Ok(outcome(status).code());
    }
    drain(&mut source, &mut printer, 0).await?;
    Ok(ExitCode::SUCCESS)
}

/// Where log pages and the task's status come from: the task service, or a fake in tests.
trait LogSource {
    /// One page of entries with a sequence above `after`.
    async fn page(
        &mut self,
        after: u64,
        page_token: String,
    ) -> Result<ListTaskLogsResponse, CliError>;
    /// The task's status when it is final; `None` while it may still change.
    async fn final_status(&mut self) -> Result<Option<i32>, CliError>;
}

struct Service<'a> {
    client: &'a mut Client,
    /// The task and the filters; each call sets the position.
    template: ListTaskLogsRequest,
}

impl LogSource for Service<'_> {
    async fn page(
        &mut self,
        after: u64,
        page_token: String,
    ) -> Result<ListTaskLogsResponse, CliError> {
        let request = ListTaskLogsRequest {
            after_sequence: after,
            page_token,
            ..self.template.clone()
        };
        Ok(self.client.list_task_logs(request).await?.into_inner())
    }

    async fn final_status(&mut self) -> Result<Option<i32>, CliError> {
        let task = self
            .client
            .get_task(GetTaskRequest {
                task_id: self.template.task_id,
            })
            .await?
            .into_inner()
            .task
            .unwrap_or_default();
        Ok(is_final(task.status).then_some(task.status))
    }
}

/// Prints log entries as lines for people or JSON lines for scripts.
struct Printer<'a> {
    out: &'a mut dyn Write,
    format: OutputFormat,
}

impl Printer<'_> {
    fn print(&mut self, entry: &TaskLogEntry) -> Result<(), CliError> {
        match self.format {
            OutputFormat::Json => output::json_line(self.out, &proto_json(entry)?),
            OutputFormat::Table => output::write_all(self.out, line(entry).as_bytes()),
        }
    }
}

/// `<local time> <LEVEL> [<table>] <message>`, without `[]` for task-level lines.
fn line(entry: &TaskLogEntry) -> String {
    // A log line reads like any log: the bare level (the JSON lines carry the API's name).
    let level = enum_name(
        entry.level,
        LogLevel::try_from(entry.level)
            .ok()
            .map(|l| l.as_str_name()),
    )
    .trim_start_matches("LOG_LEVEL_")
    .to_string();
    let time = entry.time.map(local_time).unwrap_or_default();
    let message = entry.message.trim_end();
    if entry.table.is_empty() {
        format!("{time} {level} {message}\n")
    } else {
        format!("{time} {level} [{}] {message}\n", entry.table)
    }
}

/// Prints every page after `after`; returns the last sequence printed, if any was.
async fn drain<S: LogSource>(
    source: &mut S,
    printer: &mut Printer<'_>,
    after: u64,
) -> Result<Option<u64>, CliError> {
    let mut last = None;
    let mut page_token = String::new();
    loop {
        let page = source.page(after, page_token).await?;
        for entry in &page.entries {
            printer.print(entry)?;
            last = Some(entry.sequence);
        }
        if page.next_page_token.is_empty() {
            return Ok(last);
        }
        page_token = page.next_page_token;
    }
}

/// Prints everything, then new lines every `interval`, until the task is final and a poll
/// after that found nothing new: lines written just before the final status are not lost.
/// Returns the final status.
async fn follow<S: LogSource>(
    source: &mut S,
    printer: &mut Printer<'_>,
    interval: Duration,
) -> Result<i32, CliError> {
    let mut after = 0;
    let mut final_status = None;
    loop {
        let newest = drain(source, printer, after).await?;
        if let Some(sequence) = newest {
            after = sequence;
        }
        if let Some(status) = final_status
            && newest.is_none()
        {
            return Ok(status);
        }
        if final_status.is_none() {
            final_status = source.final_status().await?;
            if final_status.is_none() {
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// Where download chunks come from: the server stream, or a fake in tests.
trait ChunkSource {
    async fn next_chunk(&mut self) -> Result<Option<String>, CliError>;
}

impl ChunkSource for tonic::codec::Streaming<DownloadTaskLogsResponse> {
    async fn next_chunk(&mut self) -> Result<Option<String>, CliError> {
        Ok(self.message().await?.map(|chunk| chunk.text))
    }
}

/// Writes every chunk to `FILE.part` as it arrives, then renames it to `path`, so `path` never
/// holds half a log. Returns the bytes written.
///
/// Fails (removing the partial file) when the stream or the disk fails.
async fn download<S: ChunkSource>(mut chunks: S, path: &Path) -> Result<u64, CliError> {
    let mut part_name = path.as_os_str().to_owned();
    part_name.push(".part");
    let part = PathBuf::from(part_name);
    let disk =
        |e: std::io::Error| CliError::Failure(format!("cannot write {}: {e}", part.display()));
    let mut file = tokio::fs::File::create(&part).await.map_err(disk)?;
    let written: Result<u64, CliError> = async {
        let mut bytes = 0u64;
        while let Some(text) = chunks.next_chunk().await? {
            file.write_all(text.as_bytes()).await.map_err(disk)?;
            bytes += u64::try_from(text.len()).unwrap_or(u64::MAX);
        }
        file.sync_all().await.map_err(disk)?;
        Ok(bytes)
    }
    .await;
    drop(file);
    let renamed = match written {
        Ok(bytes) => tokio::fs::rename(&part, path)
            .await
            .map(|()| bytes)
            .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display()))),
        Err(error) => Err(error),
    };
    if renamed.is_err() {
        // Best effort: the error being reported matters more than a leftover file.
        let _ = tokio::fs::remove_file(&part).await;
    }
    renamed
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use prost_types::Timestamp;
    use shadowsync_proto::task::v1::TaskStatus;

    use super::*;

    fn entry(sequence: u64) -> TaskLogEntry {
        TaskLogEntry {
            sequence,
            level: LogLevel::Info as i32,
            message: format!("line {sequence}"),
            ..Default::default()
        }
    }

    /// A log that grows as the task is checked: each `is_final` call makes `grow` more entries
    /// visible and answers `final`. Pages hold two entries.
    struct Fake {
        log: Vec<TaskLogEntry>,
        visible: usize,
        checks: VecDeque<(usize, bool)>,
        requests: Vec<(u64, String)>,
    }

    impl Fake {
        fn new(total: u64, visible: usize, checks: &[(usize, bool)]) -> Self {
            Self {
                log: (1..=total).map(entry).collect(),
                visible,
                checks: checks.iter().copied().collect(),
                requests: Vec::new(),
            }
        }
    }

    impl LogSource for Fake {
        async fn page(
            &mut self,
            after: u64,
            page_token: String,
        ) -> Result<ListTaskLogsResponse, CliError> {
            self.requests.push((after, page_token.clone()));
            let matching: Vec<TaskLogEntry> = self.log[..self.visible]
                .iter()
                .filter(|e| e.sequence > after)
                .cloned()
                .collect();
            let start: usize = page_token.parse().unwrap_or(0);
            let end = (start + 2).min(matching.len());
            Ok(ListTaskLogsResponse {
                entries: matching[start..end].to_vec(),
                next_page_token: if end < matching.len() {
                    end.to_string()
                } else {
                    String::new()
                },
                total_size: i32::try_from(matching.len()).expect("small"),
            })
        }

        async fn final_status(&mut self) -> Result<Option<i32>, CliError> {
            let (grow, fin) = self.checks.pop_front().expect("no more checks expected");
            self.visible = (self.visible + grow).min(self.log.len());
            Ok(fin.then_some(TaskStatus::ExecutionFailed as i32))
        }
    }

    fn printed(out: Vec<u8>) -> Vec<String> {
        String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| l.trim_start().to_string())
            .collect()
    }

    fn lines(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
        range.map(|n| format!("INFO line {n}")).collect()
    }

    #[tokio::test]
    async fn without_follow_every_page_once() {
        let mut fake = Fake::new(5, 5, &[]);
        let mut out = Vec::new();
        let mut printer = Printer {
            out: &mut out,
            format: OutputFormat::Table,
        };
        let last = drain(&mut fake, &mut printer, 0).await.expect("drain");
        assert_eq!(last, Some(5));
        assert_eq!(printed(out), lines(1..=5));
        assert_eq!(
            fake.requests,
            [(0, String::new()), (0, "2".into()), (0, "4".into())]
        );
    }

    #[tokio::test]
    async fn follow_keeps_lines_written_as_the_task_finishes() {
        // Two lines arrive while executing, one with the final status.
        let mut fake = Fake::new(6, 3, &[(2, false), (1, true)]);
        let mut out = Vec::new();
        let mut printer = Printer {
            out: &mut out,
            format: OutputFormat::Table,
        };
        let status = follow(&mut fake, &mut printer, Duration::ZERO)
            .await
            .expect("follow");
        assert_eq!(status, TaskStatus::ExecutionFailed as i32);
        assert_eq!(printed(out), lines(1..=6));
        assert!(fake.checks.is_empty());
        let afters: Vec<u64> = fake.requests.iter().map(|(after, _)| *after).collect();
        assert_eq!(afters, [0, 0, 3, 5, 6]);
    }

    #[tokio::test]
    async fn follow_of_a_finished_task_stops_after_one_empty_poll() {
        let mut fake = Fake::new(0, 0, &[(0, true)]);
        let mut out = Vec::new();
        let mut printer = Printer {
            out: &mut out,
            format: OutputFormat::Table,
        };
        follow(&mut fake, &mut printer, Duration::ZERO)
            .await
            .expect("follow");
        assert!(out.is_empty());
        assert_eq!(fake.requests.len(), 2);
    }

    #[test]
    fn a_line_per_entry() {
        let mut entry = TaskLogEntry {
            time: Some(Timestamp::default()),
            level: LogLevel::Error as i32,
            message: "statement failed\n".into(),
            table: "orders".into(),
            ..Default::default()
        };
        let time = local_time(Timestamp::default());
        assert_eq!(
            line(&entry),
            format!("{time} ERROR [orders] statement failed\n")
        );
        entry.table.clear();
        entry.level = LogLevel::Warn as i32;
        assert_eq!(line(&entry), format!("{time} WARN statement failed\n"));
    }

    #[test]
    fn json_lines_per_entry() {
        let mut out = Vec::new();
        let mut printer = Printer {
            out: &mut out,
            format: OutputFormat::Json,
        };
        printer.print(&entry(1)).expect("print");
        printer.print(&entry(2)).expect("print");
        let text = String::from_utf8(out).expect("utf8");
        let values: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(values.len(), 2);
        assert_eq!(values[1]["sequence"], "2");
        assert_eq!(values[1]["message"], "line 2");
    }

    struct Chunks(VecDeque<Result<Option<String>, CliError>>);

    impl ChunkSource for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<String>, CliError> {
            self.0.pop_front().unwrap_or(Ok(None))
        }
    }

    #[tokio::test]
    async fn a_download_lands_whole_under_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("task-42.log");
        let chunks = Chunks(VecDeque::from([
            Ok(Some("a\n".to_string())),
            Ok(Some("bc\n".to_string())),
        ]));
        assert_eq!(download(chunks, &path).await.expect("download"), 5);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\nbc\n");
        assert!(!dir.path().join("task-42.log.part").exists());
    }

    #[tokio::test]
    async fn a_broken_download_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("task-42.log");
        let chunks = Chunks(VecDeque::from([
            Ok(Some("a\n".to_string())),
            Err(CliError::Status(tonic::Status::unavailable("gone"))),
        ]));
        let error = download(chunks, &path).await.expect_err("broken stream");
        assert_eq!(error.to_string(), "UNAVAILABLE: gone");
        assert!(!path.exists());
        assert!(!dir.path().join("task-42.log.part").exists());
    }
}
