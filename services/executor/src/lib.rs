//! The shadowsync executor (DESIGN.md §6): stateless workers that consume the execute queue,
//! claim tasks from the task service and apply the approved DDL to shadow tables.
//!
//! The worker loop is filled in by its issue. An executor serves only gRPC health.
