//! The one mapping from domain errors to `tonic::Status`.
//!
//! Each service has its own error enum and converts it into [`ApiError`]; this module turns that
//! into a status. Internal causes are logged here with an incident id and never reach the client:
//! SQL, connection strings and secrets stay on the server.

use tonic::{Code, Status};

/// A service error classified by what the client should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input; `field` names the request field at fault.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the resource is in the wrong state.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller lost a race it must not retry blindly (an executor whose lease was taken).
    #[error("{0}")]
    Aborted(String),
    /// A dependency is down; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; logged, never described to the client.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Shorthand for [`ApiError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Wraps an unexpected error.
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(error))
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = match &error {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::Aborted(_) => Code::Aborted,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(cause) => {
                let incident = uuid::Uuid::new_v4();
                tracing::error!(%incident, error = %cause, "internal error");
                return Status::internal(format!("internal error (incident {incident})"));
            }
        };
        Status::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let status = Status::from(ApiError::invalid(
            "shadow_naming.affix",
            "must match [A-Za-z0-9_]{1,32}",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "shadow_naming.affix: must match [A-Za-z0-9_]{1,32}"
        );
        assert_eq!(
            Status::from(ApiError::FailedPrecondition("task 42 is finished".into())).code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn internal_causes_never_reach_the_client() {
        let cause = std::io::Error::other("password=hunter2 in SELECT * FROM secrets");
        let status = Status::from(ApiError::internal(cause));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
        assert!(status.message().starts_with("internal error (incident "));
    }
}
