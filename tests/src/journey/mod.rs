//! The user's journey as scenarios over any deployment's public API:
//! each takes the [`Endpoints`](crate::api::Endpoints) of a running system, so the same
//! scenario runs on separate services over PostgreSQL + RabbitMQ and on the embedded mode.
//!
//! Each scenario makes its own MariaDB database and connection and drops the database at the
//! end; the people are the [`Team`](crate::api::Team) plus whoever the scenario needs.

pub mod abort;
pub mod access;
pub mod approval;
pub mod expiry;
pub mod follow;

use std::time::{Duration, SystemTime};

/// A protobuf timestamp `offset` from now (negative for the past).
pub fn timestamp_in(offset: Duration, past: bool) -> prost_types::Timestamp {
    let now = SystemTime::now();
    let at = if past { now - offset } else { now + offset };
    prost_types::Timestamp::from(at)
}

/// A protobuf timestamp as a `SystemTime`.
pub fn system_time(timestamp: &prost_types::Timestamp) -> SystemTime {
    SystemTime::try_from(*timestamp).expect("valid timestamp")
}
