//! The analysis service's settings.

use shadowsync_schema::IntrospectOptions;

/// Limits and batching of the analysis service.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisConfig {
    /// Most tables one analysis may cover (a request may only lower it).
    pub max_tables: u32,
    /// `SHOW CREATE TABLE` batching against the target.
    pub introspect: IntrospectOptions,
}

/// The contract's default maximum number of tables per analysis.
pub const DEFAULT_MAX_TABLES: u32 = 20_000;

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            max_tables: DEFAULT_MAX_TABLES,
            introspect: IntrospectOptions::default(),
        }
    }
}
