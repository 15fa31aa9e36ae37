//! `shadowctl task wait ID [--timeout D]`: blocks until the task is final and exits by its
//! outcome, so a CI job can gate on a sync.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shadowsync_proto::task::v1::{GetTaskRequest, Task};

use super::{Client, is_final, outcome, show, status_name};
use crate::output::OutputFormat;
use crate::progress::Progress;
use crate::{CliError, Exit, when};

/// How often the task is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Prints the task when it is final and exits 0 when it reached EXECUTION_SUCCEEDED, 8 when
it failed, was rejected, cancelled or expired, 7 when --timeout elapsed first (see
`shadowctl help exit-codes`). A progress bar is drawn on a terminal's stderr.

Examples:
  shadowctl task wait 42
  shadowctl task wait 42 --timeout 30m -o json | jq -r .task.status")]
pub struct WaitArgs {
    /// The task id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Give up after this long (30s, 15m, 2h; default: wait as long as it takes).
    #[arg(long, value_name = "DURATION", value_parser = when::parse_duration)]
    pub timeout: Option<Duration>,
}

pub async fn run(
    client: &mut Client,
    out: &mut dyn Write,
    format: OutputFormat,
    args: &WaitArgs,
) -> Result<ExitCode, CliError> {
    let progress = Progress::tables(format);
    let waited = poll(
        || {
            // Clones share the channel; each read owns its handle.
            let mut client = client.clone();
            async move {
                Ok(client
                    .get_task(GetTaskRequest { task_id: args.id })
                    .await?
                    .into_inner()
                    .task
                    .unwrap_or_default())
            }
        },
        |task| {
            let done = task.progress.as_ref().map_or(0, |p| p.tables_done);
            let total = task
                .progress
                .as_ref()
                .map_or(task.tables_to_sync_count, |p| p.tables_total);
            let message = format!("task {} {}", task.id, status_name(task.status));
            progress.update(done.into(), total.into(), message);
        },
        args.timeout,
        POLL_INTERVAL,
    )
    .await?;
    progress.finish();
    match waited {
        Waited::Final(task) => {
            let exit = outcome(task.status);
            show::print(out, format, &show::Details::task(task))?;
            Ok(exit.code())
        }
        Waited::TimedOut(task) => {
            let status = status_name(task.status);
            show::print(out, format, &show::Details::task(task))?;
            eprintln!(
                "error: task {} is still {status} after {}s (--timeout)",
                args.id,
                args.timeout.unwrap_or_default().as_secs()
            );
            Ok(Exit::Timeout.code())
        }
    }
}

/// How a wait ended: the task is final, or the time ran out (with the task as last read).
#[derive(Debug)]
enum Waited {
    Final(Task),
    TimedOut(Task),
}

/// Reads the task every `interval` until it is final or `timeout` has passed, showing each
/// reading to `seen`.
async fn poll<F, Fut>(
    mut read: F,
    mut seen: impl FnMut(&Task),
    timeout: Option<Duration>,
    interval: Duration,
) -> Result<Waited, CliError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Task, CliError>>,
{
    let deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
    loop {
        let task = read().await?;
        seen(&task);
        if is_final(task.status) {
            return Ok(Waited::Final(task));
        }
        let now = tokio::time::Instant::now();
        let mut pause = interval;
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Ok(Waited::TimedOut(task));
            }
            pause = pause.min(deadline - now);
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use shadowsync_proto::task::v1::TaskStatus;

    use super::*;

    fn task(status: TaskStatus) -> Task {
        Task {
            id: 7,
            status: status as i32,
            ..Default::default()
        }
    }

    async fn wait_through(statuses: &[TaskStatus], timeout: Option<Duration>) -> (Waited, usize) {
        let queue = RefCell::new(statuses.iter().copied().collect::<VecDeque<_>>());
        let mut reads = 0;
        let waited = poll(
            || {
                reads += 1;
                let next = queue.borrow_mut().pop_front();
                async move { Ok(task(next.unwrap_or(TaskStatus::Executing))) }
            },
            |_| {},
            timeout,
            Duration::from_millis(5),
        )
        .await
        .expect("poll");
        (waited, reads)
    }

    #[tokio::test]
    async fn waits_until_final_and_returns_the_final_task() {
        let (waited, reads) = wait_through(
            &[
                TaskStatus::Approving,
                TaskStatus::WaitForExecution,
                TaskStatus::Executing,
                TaskStatus::ExecutionFailed,
            ],
            None,
        )
        .await;
        assert!(
            matches!(&waited, Waited::Final(t) if t.status == TaskStatus::ExecutionFailed as i32),
            "{waited:?}"
        );
        assert_eq!(reads, 4);
    }

    #[tokio::test]
    async fn a_timeout_returns_the_last_reading() {
        let (waited, reads) = wait_through(&[], Some(Duration::from_millis(30))).await;
        assert!(
            matches!(&waited, Waited::TimedOut(t) if t.status == TaskStatus::Executing as i32),
            "{waited:?}"
        );
        assert!(
            reads >= 2,
            "read once at the start and again before giving up: {reads}"
        );
    }
}
