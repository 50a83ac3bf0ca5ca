//! Test support: the in-process daemon, a fake merchant application, and a minimal
//! HTTP/1.1 client on raw sockets.

pub mod daemon;
pub mod fake_merchant;
pub mod http;

pub use daemon::TestDaemon;
