//! Output for people (aligned tables) and scripts (JSON).

use std::io::Write;

use crate::CliError;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Writes rows under headers, each column as wide as its widest cell.
pub fn table(out: &mut dyn Write, headers: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut text = line(headers.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    write_all(out, text.as_bytes())
}

/// Writes `label  value` lines with the values aligned; a multi-line value continues under its
/// first line.
pub fn fields(out: &mut dyn Write, fields: &[(&str, String)]) -> Result<(), CliError> {
    let width = fields
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (label, value) in fields {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        text.push_str(format!("{label:<width$}  {first}").trim_end());
        text.push('\n');
        for line in lines {
            text.push_str(format!("{:width$}  {line}", "").trim_end());
            text.push('\n');
        }
    }
    write_all(out, text.as_bytes())
}

/// Writes a value as one line of JSON (for JSON-lines streams).
pub fn json_line(out: &mut dyn Write, value: &serde_json::Value) -> Result<(), CliError> {
    let mut text = serde_json::to_string(value).map_err(|e| CliError::Failure(e.to_string()))?;
    text.push('\n');
    write_all(out, text.as_bytes())
}

/// Writes a value as pretty JSON.
pub fn json(out: &mut dyn Write, value: &serde_json::Value) -> Result<(), CliError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| CliError::Failure(e.to_string()))?;
    text.push('\n');
    write_all(out, text.as_bytes())
}

/// A timestamp in the viewer's local time zone, RFC 3339 to the second.
pub fn local_time(timestamp: prost_types::Timestamp) -> String {
    let nanos = u32::try_from(timestamp.nanos).unwrap_or(0);
    chrono::DateTime::from_timestamp(timestamp.seconds, nanos)
        .map(|utc| {
            utc.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        })
        .unwrap_or_default()
}

/// How long ago `timestamp` was, in its largest whole unit (`45s`, `12m`, `5h`, `3d`), as
/// listings show it; a time in the future (clock skew) is `0s`.
pub fn age(timestamp: prost_types::Timestamp) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    age_between(timestamp.seconds, now)
}

fn age_between(then: i64, now: i64) -> String {
    let seconds = now.saturating_sub(then).max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..86_400 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// An enum value as the API names it (`TASK_STATUS_EXECUTING`): tables show the same names as
/// JSON, so what a person reads is what a script matches. The number when this client does not
/// know the value (a newer server's).
pub fn enum_name(value: i32, name: Option<&str>) -> String {
    name.map_or_else(|| value.to_string(), str::to_string)
}

/// A message as canonical proto3 JSON.
pub fn proto_json<M: prost::Message + prost::Name>(
    message: &M,
) -> Result<serde_json::Value, CliError> {
    shadowsync_proto::json::to_json(message).map_err(|e| CliError::Failure(e.to_string()))
}

/// A client request id, unique per invocation: retries inside one command are idempotent.
pub fn request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("shadowctl-{}-{nanos}", std::process::id())
}

/// Writes bytes, turning an I/O failure (a closed pipe) into an error instead of a panic.
pub fn write_all(out: &mut dyn Write, bytes: &[u8]) -> Result<(), CliError> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Failure(format!("cannot write output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_in_their_largest_unit() {
        assert_eq!(age_between(100, 145), "45s");
        assert_eq!(age_between(0, 59 * 60 + 59), "59m");
        assert_eq!(age_between(0, 5 * 3_600 + 1), "5h");
        assert_eq!(age_between(0, 3 * 86_400), "3d");
        assert_eq!(age_between(100, 90), "0s", "a clock ahead of ours");
    }

    #[test]
    fn columns_align() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["SERVICE", "STATUS"],
            &[
                vec!["a".into(), "SERVING".into()],
                vec!["longer".into(), "NOT_SERVING".into()],
            ],
        )
        .expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "SERVICE  STATUS\na        SERVING\nlonger   NOT_SERVING\n"
        );
    }

    #[test]
    fn fields_align_and_continue_multi_line_values() {
        let mut out = Vec::new();
        fields(
            &mut out,
            &[
                ("id", "42".into()),
                ("remarks", "first\nsecond".into()),
                ("empty", String::new()),
            ],
        )
        .expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "id       42\nremarks  first\n         second\nempty\n"
        );
    }
}
