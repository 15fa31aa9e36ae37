//! Names that are part of the contract but cannot be expressed in protobuf: request types,
//! service identities and AMQP exchange/queue base names.

/// Approval request type of a shadow-table sync task (owned by [`SVC_TASK`]).
pub const REQUEST_TYPE_SHADOW_TABLE_SYNC: &str = "shadow_table_sync";
/// Approval request type of a permission application (owned by the approval service).
pub const REQUEST_TYPE_PERMISSION_APPLY: &str = "permission_apply";

/// `ResourceRef.type` of a `shadow_table_sync` request; its id is the task id in decimal.
pub const RESOURCE_TYPE_TASK: &str = "task";
/// `ResourceRef.type` of a `permission_apply` request; its id is a UUID.
pub const RESOURCE_TYPE_PERMISSION_APPLICATION: &str = "permission_application";

/// Service identity (JWT `sub`) of the task service.
pub const SVC_TASK: &str = "svc:task";
/// Service identity of the approval service.
pub const SVC_APPROVAL: &str = "svc:approval";
/// Service identity of the analysis service.
pub const SVC_ANALYSIS: &str = "svc:analysis";
/// Service identity of executors; the only identity `TaskExecutionService` accepts.
pub const SVC_EXECUTOR: &str = "svc:executor";

/// Role that manages templates, priority, connections and grants.
pub const ROLE_ADMIN: &str = "admin";

/// Base name of the execute queue (`x-max-priority` = [`EXECUTE_QUEUE_MAX_PRIORITY`]). Every
/// queue and exchange name is prefixed with the configured prefix.
pub const EXECUTE_QUEUE: &str = "shadowsync.execute";
/// Highest AMQP priority of the execute queue.
pub const EXECUTE_QUEUE_MAX_PRIORITY: u8 = 10;
/// Dead-letter exchange of the execute queue.
pub const DEAD_LETTER_EXCHANGE: &str = "shadowsync.dlx";
/// Queue bound to [`DEAD_LETTER_EXCHANGE`] for poison execute messages.
pub const EXECUTE_DEAD_LETTER_QUEUE: &str = "shadowsync.execute.dead";
/// Durable topic exchange of every event (`task.*`, `approval.*`, `execution.dispatched`,
/// `permission.*`).
pub const EVENTS_EXCHANGE: &str = "shadowsync.events";
/// AMQP `content_type` of every queue and event message.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";

/// AMQP priority of a template at 1-based `rank`: max(1, 11 − rank), never above
/// [`EXECUTE_QUEUE_MAX_PRIORITY`] (rank 0 is not a rank, but must not yield an invalid priority).
pub fn execution_priority(rank: u32) -> u8 {
    let priority = 11_u32
        .saturating_sub(rank)
        .clamp(1, u32::from(EXECUTE_QUEUE_MAX_PRIORITY));
    u8::try_from(priority).unwrap_or(EXECUTE_QUEUE_MAX_PRIORITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_priority_follows_rank() {
        assert_eq!(execution_priority(1), 10);
        assert_eq!(execution_priority(2), 9);
        assert_eq!(execution_priority(10), 1);
        assert_eq!(execution_priority(11), 1);
        assert_eq!(execution_priority(1000), 1);
        // Rank 0 is not a valid rank; it still yields a valid AMQP priority.
        assert_eq!(execution_priority(0), 10);
    }
}
