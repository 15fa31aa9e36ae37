//! gRPC and queue contracts of shadowsync.
