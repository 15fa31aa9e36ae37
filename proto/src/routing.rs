//! AMQP routing keys of the events on the `shadowsync.events` exchange. Producers
//! and consumers build them here so both sides agree.

use crate::approval::v1::{ApprovalEventType, PermissionEventType};
use crate::task::v1::TaskStatus;

/// Routing key of [`crate::common::v1::ExecutionDispatched`].
pub const EXECUTION_DISPATCHED: &str = "execution.dispatched";
/// Binding pattern for every task event.
pub const ALL_TASK_EVENTS: &str = "task.*";
/// Binding pattern for every permission event.
pub const ALL_PERMISSION_EVENTS: &str = "permission.*";

/// `task.<status>`, e.g. `task.wait_for_execution`. `None` for UNSPECIFIED (never published).
pub fn task_event(status: TaskStatus) -> Option<String> {
    suffix(status.as_str_name(), "TASK_STATUS_").map(|status| format!("task.{status}"))
}

/// `approval.<event>.<request_type>`, e.g. `approval.decided.shadow_table_sync`.
/// `None` for UNSPECIFIED.
pub fn approval_event(event: ApprovalEventType, request_type: &str) -> Option<String> {
    suffix(event.as_str_name(), "APPROVAL_EVENT_TYPE_")
        .map(|event| format!("approval.{event}.{request_type}"))
}

/// Binding pattern for every approval event of one request type: `approval.*.<request_type>`.
pub fn approval_events_of_type(request_type: &str) -> String {
    format!("approval.*.{request_type}")
}

/// `permission.<event>`, e.g. `permission.granted`. `None` for UNSPECIFIED.
pub fn permission_event(event: PermissionEventType) -> Option<String> {
    suffix(event.as_str_name(), "PERMISSION_EVENT_TYPE_").map(|event| format!("permission.{event}"))
}

/// The lower-case enum value name without its prefix; `None` for the `_UNSPECIFIED` value.
fn suffix(value_name: &str, prefix: &str) -> Option<String> {
    let rest = value_name.strip_prefix(prefix)?;
    (rest != "UNSPECIFIED").then(|| rest.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_follow_the_design() {
        assert_eq!(
            task_event(TaskStatus::WaitForExecution).as_deref(),
            Some("task.wait_for_execution")
        );
        assert_eq!(task_event(TaskStatus::Unspecified), None);
        assert_eq!(
            approval_event(ApprovalEventType::Decided, "shadow_table_sync").as_deref(),
            Some("approval.decided.shadow_table_sync")
        );
        assert_eq!(
            approval_event(ApprovalEventType::NodeAdvanced, "feature_flag_change").as_deref(),
            Some("approval.node_advanced.feature_flag_change")
        );
        assert_eq!(
            permission_event(PermissionEventType::Revoked).as_deref(),
            Some("permission.revoked")
        );
        assert_eq!(approval_events_of_type("x"), "approval.*.x");
    }
}
