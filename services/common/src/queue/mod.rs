//! The queue abstraction (DESIGN.md §2 "AMQP topology"): a lapin implementation for production
//! and an in-process one, persisted in SQLite, for the embedded mode.
