//! Test support: the in-process daemon and a minimal HTTP/1.1 client on raw sockets.

pub mod daemon;
pub mod http;

pub use daemon::TestDaemon;
