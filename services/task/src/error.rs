//! The task service's error type and its one mapping to `tonic::Status` (through
//! [`ApiError`], which logs internal causes and never sends them to the client).

use shadowsync_common::error::ApiError;
use tonic::Status;

/// Everything a task-service use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Bad input; `field` names the request field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// Unknown, or not visible to the caller (ids never leak through PERMISSION_DENIED).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// Accepted by the contract but not supported yet (PostgreSQL targets).
    #[error("{0}")]
    Unimplemented(String),
    /// A dependency (analysis or approval service) is down; retryable.
    #[error("{0}")]
    Unavailable(String),
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] sqlx::Error),
    /// Anything else unexpected; never described to the client.
    #[error("{0}")]
    Internal(String),
}

/// The crate's result alias.
pub type Result<T, E = TaskError> = std::result::Result<T, E>;

impl TaskError {
    /// Shorthand for [`TaskError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(error: TaskError) -> Self {
        match error {
            TaskError::InvalidArgument { field, reason } => ApiError::invalid(field, reason),
            TaskError::NotFound(m) => ApiError::NotFound(m),
            TaskError::AlreadyExists(m) => ApiError::AlreadyExists(m),
            TaskError::FailedPrecondition(m) => ApiError::FailedPrecondition(m),
            TaskError::PermissionDenied(m) => ApiError::PermissionDenied(m),
            TaskError::Unavailable(m) => ApiError::Unavailable(m),
            // Only reached through `From<TaskError> for ApiError` callers that do not special-case
            // it; the Status conversion below answers UNIMPLEMENTED.
            TaskError::Unimplemented(m) => ApiError::FailedPrecondition(m),
            // Retryable: the executor hands its delivery back instead of dead-lettering it, and
            // a client retries, so no task is stranded by an outage of the store.
            TaskError::Store(error) if is_unreachable(&error) => {
                ApiError::Unavailable("metadata store unavailable".to_owned())
            }
            internal @ (TaskError::Store(_) | TaskError::Internal(_)) => {
                ApiError::internal(internal)
            }
        }
    }
}

impl From<TaskError> for Status {
    fn from(error: TaskError) -> Self {
        if let TaskError::Unimplemented(message) = error {
            return Status::unimplemented(message);
        }
        ApiError::from(error).into()
    }
}

/// Whether a store error means the store cannot be reached now (connection refused, reset or
/// timed out; the server shutting down or not accepting connections yet), as opposed to a
/// query the store refused.
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's connection exceptions (class 08) and operator interventions that end
        // sessions (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
        _ => false,
    }
}

/// A peer's status as seen by the task service: codes that mean "the peer is down" stay
/// retryable, anything else is internal (the peer's message may not be meant for our caller).
pub fn from_peer(service: &str, status: &Status) -> TaskError {
    match status.code() {
        // UNKNOWN is what tonic reports when the connection breaks mid-call (the peer was
        // killed or restarted); the services never answer it deliberately, so it is transient.
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown => {
            TaskError::Unavailable(format!("the {service} service is unavailable"))
        }
        code => TaskError::Internal(format!("{service} service answered {code:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_is_unavailable_and_a_refused_query_internal() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        for error in [
            sqlx::Error::Io(reset),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
        ] {
            let status = Status::from(TaskError::Store(error));
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            assert_eq!(status.message(), "metadata store unavailable");
        }
        let refused = Status::from(TaskError::Store(sqlx::Error::RowNotFound));
        assert_eq!(refused.code(), tonic::Code::Internal);
    }
}
