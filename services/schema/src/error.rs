//! The engine's error type.

use thiserror::Error;

/// Everything that can go wrong in the schema engine. Messages are lowercase and name the
/// offending input, so services can pass them on as `INVALID_ARGUMENT`/`NOT_FOUND` details.
#[derive(Debug, Error)]
pub enum SchemaError {
    /// The naming rule's affix is empty, longer than 32 characters or has a character outside
    /// `[A-Za-z0-9_]`.
    #[error("invalid shadow affix {affix:?}: {reason}")]
    InvalidAffix { affix: String, reason: String },

    /// Tables named in a partial range that are not base tables of the database.
    #[error("unknown table(s) in database {database}: {}", tables.join(", "))]
    UnknownTables {
        database: String,
        tables: Vec<String>,
    },

    /// The database does not exist (or is not visible to the user).
    #[error("database {0} does not exist")]
    DatabaseNotFound(String),

    /// A `SHOW CREATE TABLE` text the parser cannot read.
    #[error("cannot parse DDL at byte {position}: {message}")]
    Parse { position: usize, message: String },

    /// Bad command-line or request input other than the above.
    #[error("invalid argument {field}: {message}")]
    InvalidArgument { field: String, message: String },

    /// The database server failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),

    /// Serialising the plan failed.
    #[error("cannot serialise plan: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The crate's result alias.
pub type Result<T, E = SchemaError> = std::result::Result<T, E>;

impl SchemaError {
    pub(crate) fn parse(position: usize, message: impl Into<String>) -> Self {
        Self::Parse {
            position,
            message: message.into(),
        }
    }
}
