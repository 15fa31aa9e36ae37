//! Test support shared by every crate's tests (feature `test-support`): throw-away stores and
//! MariaDB databases on the real servers, a TCP proxy that plays network failures without
//! touching shared servers, and a stand-in identity provider (keys and a JWK Set server).
//! Test code: it panics on set-up failures, which is what a test should do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod db;
pub mod fake_mysql;
pub mod identity_provider;
pub mod linkage;
pub mod mariadb;
pub mod proxy;

pub use db::TestDatabase;
pub use fake_mysql::{CleartextAsk, FakeMySql};
pub use mariadb::MariaDb;
pub use proxy::TcpProxy;
