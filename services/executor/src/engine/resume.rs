//! Where a table starts: the drift check and resume decision,
//! made from the fingerprints read just before the table is touched. Pure, so every case is
//! unit-tested without a database.

use crate::backend::PlanTable;

/// The error code of a table whose source changed since the analysis.
pub const SOURCE_DRIFT_CODE: &str = "source_drift";
/// The error code of a table whose shadow is in neither its analysed nor its target state.
pub const SHADOW_DRIFT_CODE: &str = "shadow_drift";
/// The message of a source drift.
pub const SOURCE_DRIFT_MESSAGE: &str =
    "source table changed since analysis; initiate the task again";

/// What to do with a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableStart {
    /// The shadow is already at its target: record ALREADY_IN_SYNC, run nothing.
    AlreadyInSync,
    /// Run the statements from this index on (0: from the start; more: an earlier attempt ran
    /// the ones before, as their fingerprints show).
    From(usize),
    /// The source is not what was analysed (or is gone).
    SourceDrift {
        expected: String,
        found: Option<String>,
    },
    /// The shadow is neither analysed, nor target, nor any intermediate state of the plan.
    ShadowDrift {
        analysed: String,
        target: String,
        found: Option<String>,
    },
}

/// Decides from the current fingerprints of the table's source and shadow (`None`: missing).
pub fn decide(table: &PlanTable, source: Option<&str>, shadow: Option<&str>) -> TableStart {
    if source != Some(table.source_fingerprint.as_str()) {
        return TableStart::SourceDrift {
            expected: table.source_fingerprint.clone(),
            found: source.map(str::to_owned),
        };
    }
    if let Some(shadow) = shadow {
        if shadow == table.target_fingerprint {
            return TableStart::AlreadyInSync;
        }
        // The last statement whose result is present: an earlier attempt got that far.
        if let Some(done) = table.statements.iter().rposition(|s| {
            !s.expected_fingerprint_after.is_empty() && s.expected_fingerprint_after == shadow
        }) {
            return TableStart::From(done + 1);
        }
        if !table.shadow_fingerprint.is_empty() && shadow == table.shadow_fingerprint {
            return TableStart::From(0);
        }
    } else if table.shadow_fingerprint.is_empty() {
        // Missing and planned as missing (CREATE).
        return TableStart::From(0);
    }
    TableStart::ShadowDrift {
        analysed: display(&table.shadow_fingerprint),
        target: table.target_fingerprint.clone(),
        found: shadow.map(str::to_owned),
    }
}

fn display(fingerprint: &str) -> String {
    if fingerprint.is_empty() {
        "(missing)".into()
    } else {
        fingerprint.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use shadowsync_proto::task::v1::TableExecutionStatus;

    use super::*;
    use crate::backend::PlanStatement;

    fn table(shadow: &str, after: &[&str]) -> PlanTable {
        PlanTable {
            ordinal: 0,
            source: "orders".into(),
            shadow: "_test_orders".into(),
            source_fingerprint: "src".into(),
            shadow_fingerprint: shadow.into(),
            target_fingerprint: after.last().map_or("tgt", |s| *s).into(),
            statements: after
                .iter()
                .enumerate()
                .map(|(i, f)| PlanStatement {
                    index: i as u32,
                    sql: format!("ALTER TABLE `_test_orders` COMMENT '{i}'"),
                    expected_fingerprint_after: (*f).into(),
                    script_index: i as u32,
                })
                .collect(),
            depends_on: vec![],
            recorded_status: TableExecutionStatus::Pending,
        }
    }

    #[test]
    fn source_changed_or_missing_is_drift() {
        let t = table("", &["a"]);
        assert!(matches!(
            decide(&t, Some("other"), None),
            TableStart::SourceDrift { .. }
        ));
        assert!(matches!(
            decide(&t, None, None),
            TableStart::SourceDrift { found: None, .. }
        ));
    }

    #[test]
    fn create_starts_from_zero_and_skips_when_present() {
        let t = table("", &["a"]);
        assert_eq!(decide(&t, Some("src"), None), TableStart::From(0));
        assert_eq!(
            decide(&t, Some("src"), Some("a")),
            TableStart::AlreadyInSync
        );
        assert!(matches!(
            decide(&t, Some("src"), Some("zzz")),
            TableStart::ShadowDrift { .. }
        ));
    }

    #[test]
    fn update_resumes_after_the_last_present_statement() {
        let t = table("s0", &["s1", "s2", "s3"]);
        assert_eq!(decide(&t, Some("src"), Some("s0")), TableStart::From(0));
        assert_eq!(decide(&t, Some("src"), Some("s1")), TableStart::From(1));
        assert_eq!(decide(&t, Some("src"), Some("s2")), TableStart::From(2));
        assert_eq!(
            decide(&t, Some("src"), Some("s3")),
            TableStart::AlreadyInSync
        );
        // An update whose shadow vanished is drift, with both fingerprints named.
        let TableStart::ShadowDrift {
            analysed,
            target,
            found,
        } = decide(&t, Some("src"), None)
        else {
            panic!("expected shadow drift");
        };
        assert_eq!(
            (analysed.as_str(), target.as_str(), found),
            ("s0", "s3", None)
        );
    }
}
