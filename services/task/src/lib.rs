//! The shadowsync task service (DESIGN.md §2).
//!
//! Until its issue lands, the gRPC surface answers `UNIMPLEMENTED`; see `services/server`.
