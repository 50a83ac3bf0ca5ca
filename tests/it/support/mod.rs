//! Test support: the in-process daemon, a minimal HTTP/1.1 client on raw sockets, and a
//! fake provider API.

pub mod daemon;
pub mod fake_provider;
pub mod http;

pub use daemon::TestDaemon;
