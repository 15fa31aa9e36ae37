//! The approval service's errors and their one mapping to `tonic::Status` (through
//! [`ApiError`]).

use shadowsync_common::error::ApiError;

/// What can go wrong in an approval use case.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// A compare-and-set lost to a concurrent change; the use case retries or reports it.
    #[error("concurrent change")]
    Conflict,
    #[error("metadata store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// Start-up could not migrate the store.
    #[error(transparent)]
    Setup(#[from] shadowsync_common::db::DbError),
}

/// Result of an approval use case.
pub type Result<T, E = ApprovalError> = std::result::Result<T, E>;

impl ApprovalError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<serde_json::Error> for ApprovalError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}

impl From<ApprovalError> for ApiError {
    fn from(error: ApprovalError) -> Self {
        match error {
            ApprovalError::InvalidArgument { field, reason } => ApiError::invalid(field, reason),
            ApprovalError::NotFound(m) => ApiError::NotFound(m),
            ApprovalError::AlreadyExists(m) => ApiError::AlreadyExists(m),
            ApprovalError::FailedPrecondition(m) => ApiError::FailedPrecondition(m),
            ApprovalError::PermissionDenied(m) => ApiError::PermissionDenied(m),
            // Only reached when retries ran out: the client may simply retry.
            ApprovalError::Conflict => {
                ApiError::Unavailable("concurrent change; retry".to_string())
            }
            ApprovalError::Store(error) if is_unavailable(&error) => {
                ApiError::Unavailable("metadata store unavailable".to_string())
            }
            error @ (ApprovalError::Store(_)
            | ApprovalError::Corrupt(_)
            | ApprovalError::Setup(_)) => ApiError::internal(error),
        }
    }
}

impl From<ApprovalError> for tonic::Status {
    fn from(error: ApprovalError) -> Self {
        ApiError::from(error).into()
    }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    )
}

/// Whether a store error is a unique-constraint violation (a duplicate the database refused).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.kind() == sqlx::error::ErrorKind::UniqueViolation
                // Through the Any driver the kind may be lost; both engines name it.
                || db.message().contains("unique")
                || db.message().contains("UNIQUE")
                || db.code().as_deref() == Some("23505")
                || db.code().as_deref() == Some("2067")
                || db.code().as_deref() == Some("1555")
        }
        _ => false,
    }
}
