//! What every shadowsync service shares: configuration, telemetry, identity, the error → status
//! mapping and the queue abstraction.

pub mod queue;
