//! The analysis service's errors and their mapping to `tonic::Status`.

use shadowsync_common::error::ApiError;
use shadowsync_proto::common::v1::AnalysisFailureReason;
use tonic::Status;

/// Everything an analysis-service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The target database failed; `Analyze` reports it as a `failure` message, the listing
    /// calls as a status.
    #[error("{message}")]
    Target {
        reason: AnalysisFailureReason,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
}

impl AnalysisError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<AnalysisError> for Status {
    fn from(error: AnalysisError) -> Self {
        let api = match error {
            AnalysisError::InvalidArgument { field, reason } => ApiError::invalid(field, reason),
            AnalysisError::Target { reason, message } => match reason {
                AnalysisFailureReason::Unreachable => ApiError::Unavailable(message),
                AnalysisFailureReason::DatabaseNotFound => ApiError::NotFound(message),
                AnalysisFailureReason::AccessDenied
                | AnalysisFailureReason::UnsupportedDialect
                | AnalysisFailureReason::TooManyTables => ApiError::FailedPrecondition(message),
                _ => ApiError::Internal(message.into()),
            },
            AnalysisError::Internal(message) => ApiError::Internal(message.into()),
        };
        api.into()
    }
}
