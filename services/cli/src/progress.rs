//! Progress bars for people: drawn on stderr only when it is a terminal and the output is for
//! people, so pipes, files and JSON never carry them.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::OutputFormat;

/// A bar of tables done out of a total, with a message (the status, the current table).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar when stderr is a terminal and `format` is for people; otherwise nothing is drawn.
    pub fn tables(format: OutputFormat) -> Self {
        let shown = format == OutputFormat::Table && std::io::stderr().is_terminal();
        Self::with(shown.then(ProgressDrawTarget::stderr))
    }

    fn with(target: Option<ProgressDrawTarget>) -> Self {
        let bar = target.map(|target| {
            let bar = ProgressBar::with_draw_target(Some(0), target);
            // The percent is computed from the same two numbers the counter shows, so they
            // cannot disagree.
            let style = ProgressStyle::with_template(
                "{spinner} [{bar:30}] {percent:>3}% {pos}/{len} tables  {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }

    /// Moves the bar to `done` of `total` with `message`.
    pub fn update(&self, done: u64, total: u64, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done.min(total));
            bar.set_message(message.into());
        }
    }

    /// Leaves the final state on screen and moves below it.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_drawn_for_scripts() {
        // The test's stderr is not a terminal, and JSON is never decorated.
        assert!(Progress::tables(OutputFormat::Table).bar.is_none());
        assert!(Progress::tables(OutputFormat::Json).bar.is_none());
    }

    #[test]
    fn percent_and_counter_come_from_the_same_numbers() {
        let progress = Progress::with(Some(ProgressDrawTarget::hidden()));
        progress.update(0, 1_000, "introspecting");
        let bar = progress.bar.as_ref().expect("a bar");
        assert_eq!((bar.position(), bar.length()), (0, Some(1_000)));
        progress.update(530, 1_000, "analysing");
        assert_eq!(bar.position(), 530);
        // More done than the total (a stale total) never overflows the bar.
        progress.update(5, 3, "");
        assert_eq!(bar.position(), 3);
    }
}
