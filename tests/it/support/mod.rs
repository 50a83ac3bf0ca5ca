//! Test support: the in-process daemon, a fake merchant application, a fake provider
//! API, and a minimal HTTP/1.1 client on raw sockets.

pub mod daemon;
pub mod fake_merchant;
pub mod fake_provider;
pub mod http;

pub use daemon::TestDaemon;
