//! `shadowctl guard --database DB --shadows T1,T2,…`: asks the executor's safety guard about
//! statements without a running platform, so an auditor can question it directly.
//!
//! The verdicts come from [`shadowsync_executor::guard::SafetyGuard::check`], the very function
//! the executor calls before each statement (which lexes under the executor's pinned session
//! `sql_mode`): no copy of the rules lives here, so what this command accepts is exactly what an
//! executor would run.

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::Value;
use shadowsync_executor::guard::SafetyGuard;
use shadowsync_schema::ShadowNaming;

use crate::CliError;
use crate::output;

/// Exit status when every statement is accepted.
const ALL_ACCEPTED: u8 = 0;
/// Exit status when at least one statement is refused.
const SOME_REFUSED: u8 = 1;
/// Exit status when the input cannot be questioned at all (clap uses 2 for bad flags too).
const BAD_INPUT: u8 = 2;

/// One output line, its fields in the documented order.
#[derive(Debug, serde::Serialize)]
struct VerdictLine<'a> {
    index: usize,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// Flags of `shadowctl guard`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Reads a JSON array of SQL statements (strings) on stdin and prints one JSON line per
statement, in order:
  {\"index\":0,\"verdict\":\"ACCEPT\"}
  {\"index\":1,\"verdict\":\"REFUSE\",\"reason\":\"…\"}
An accepted statement's line has no \"reason\" field. The check is the executor's own
safety guard, reading SQL under the executor's pinned session sql_mode.
With --prefix or --suffix (the task's naming rule), foreign keys may also reference any
table the rule names a shadow; without, only the --shadows tables.

Exit status: 0 every statement accepted, 1 at least one refused, 2 bad input (stdin not
JSON, not an array of strings, or a missing or empty flag). --output is ignored: the
output is always JSON lines.

Example:
  echo '[\"ALTER TABLE `_test_orders` ADD COLUMN `note` varchar(20)\",
         \"ALTER TABLE `orders` ADD COLUMN `note` varchar(20)\"]' |
    shadowctl guard --database shop --shadows _test_orders,_test_customers")]
pub struct GuardArgs {
    /// The task's database: a target qualified with any other database is refused.
    #[arg(long)]
    pub database: String,
    /// Comma-separated shadow tables the statements may change (exact names).
    #[arg(long, value_delimiter = ',', required = true)]
    pub shadows: Vec<String>,
    /// The task's naming rule as a prefix (e.g. `_test_`): foreign keys may then also
    /// reference any table the rule names a shadow. Without --prefix or --suffix, only the
    /// --shadows tables may be referenced.
    #[arg(long, conflicts_with = "suffix")]
    pub prefix: Option<String>,
    /// The task's naming rule as a suffix (e.g. `_t`); see --prefix.
    #[arg(long)]
    pub suffix: Option<String>,
}

/// Questions the guard about every statement on `input`; see [`GuardArgs`] for the format and
/// the exit status. Bad input is told on `errors` (one line) with exit status 2.
///
/// Fails only when `out` cannot be written.
pub fn run(
    args: &GuardArgs,
    input: &mut dyn Read,
    out: &mut dyn Write,
    errors: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let questioned = validate(args).and_then(|naming| Ok((naming, read_statements(input)?)));
    let (naming, statements) = match questioned {
        Ok(questioned) => questioned,
        Err(message) => {
            output::write_all(errors, format!("error: {message}\n").as_bytes())?;
            return Ok(ExitCode::from(BAD_INPUT));
        }
    };
    let shadows = args.shadows.iter().map(|name| name.trim().to_owned());
    let mut guard = SafetyGuard::new(args.database.clone(), shadows);
    if let Some(naming) = naming {
        guard = guard.with_naming(naming);
    }
    let mut refused = false;
    let mut lines = String::new();
    for (index, statement) in statements.iter().enumerate() {
        let refusal = guard.check(statement).err();
        refused |= refusal.is_some();
        let line = VerdictLine {
            index,
            verdict: if refusal.is_some() {
                "REFUSE"
            } else {
                "ACCEPT"
            },
            reason: refusal.as_ref().map(|refusal| refusal.reason()),
        };
        let json = serde_json::to_string(&line)
            .map_err(|error| CliError::Failure(format!("cannot encode a verdict: {error}")))?;
        lines.push_str(&json);
        lines.push('\n');
    }
    output::write_all(out, lines.as_bytes())?;
    Ok(ExitCode::from(if refused {
        SOME_REFUSED
    } else {
        ALL_ACCEPTED
    }))
}

/// Checks the flags; the naming rule they give, if any.
fn validate(args: &GuardArgs) -> Result<Option<ShadowNaming>, String> {
    if args.database.trim().is_empty() {
        return Err("--database: must not be empty".into());
    }
    if args.shadows.iter().any(|name| name.trim().is_empty()) {
        return Err(
            "--shadows: every name must be non-empty (e.g. _test_orders,_test_items)".into(),
        );
    }
    match (&args.prefix, &args.suffix) {
        (Some(prefix), _) => ShadowNaming::prefix(Some(prefix))
            .map(Some)
            .map_err(|error| format!("--prefix: {error}")),
        (None, Some(suffix)) => ShadowNaming::suffix(Some(suffix))
            .map(Some)
            .map_err(|error| format!("--suffix: {error}")),
        (None, None) => Ok(None),
    }
}

/// The statements of a JSON array of strings; the error names what is wrong.
fn read_statements(input: &mut dyn Read) -> Result<Vec<String>, String> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|error| format!("stdin: cannot be read as UTF-8 text: {error}"))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| format!("stdin: not JSON ({error}); expected an array of strings"))?;
    let Value::Array(items) = value else {
        return Err(format!(
            "stdin: expected a JSON array of strings, got {}",
            kind(&value)
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(statement) => Ok(statement),
            other => Err(format!(
                "stdin: element {index} is {}, expected a string",
                kind(&other)
            )),
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(shadows: &[&str]) -> GuardArgs {
        GuardArgs {
            database: "shop".into(),
            shadows: shadows.iter().map(|s| s.to_string()).collect(),
            prefix: None,
            suffix: None,
        }
    }

    fn question(args: &GuardArgs, input: &str) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let code = run(args, &mut input.as_bytes(), &mut out, &mut errors).expect("writes");
        let code = if code == ExitCode::from(ALL_ACCEPTED) {
            ALL_ACCEPTED
        } else if code == ExitCode::from(SOME_REFUSED) {
            SOME_REFUSED
        } else {
            BAD_INPUT
        };
        (
            code,
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(errors).expect("utf-8"),
        )
    }

    #[test]
    fn bad_input_names_what_is_wrong() {
        let shadows = args(&["_test_o"]);
        for (input, expected) in [
            ("not json", "not JSON"),
            ("{\"a\":1}", "got an object"),
            ("[\"ok\", 3]", "element 1 is a number"),
        ] {
            let (code, out, errors) = question(&shadows, input);
            assert_eq!(code, BAD_INPUT, "{input}");
            assert!(out.is_empty(), "{out}");
            assert!(errors.contains(expected), "{input}: {errors}");
        }
        let (code, _, errors) = question(&args(&["_test_o", " "]), "[]");
        assert_eq!(code, BAD_INPUT);
        assert!(errors.contains("--shadows"), "{errors}");
        let bad_prefix = GuardArgs {
            prefix: Some("a-b".into()),
            ..args(&["_test_o"])
        };
        let (code, _, errors) = question(&bad_prefix, "[]");
        assert_eq!(code, BAD_INPUT);
        assert!(errors.contains("--prefix"), "{errors}");
    }

    #[test]
    fn an_empty_array_is_accepted_with_no_lines() {
        assert_eq!(
            question(&args(&["_test_o"]), "[]"),
            (0, String::new(), String::new())
        );
    }
}
