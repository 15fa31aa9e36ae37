//! The shadowsync schema engine (DESIGN.md §5).
