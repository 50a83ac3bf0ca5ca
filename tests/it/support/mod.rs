//! Test support: the in-process daemon, a fake merchant application, a fake provider
//! API, a minimal HTTP/1.1 client on raw sockets, and provider signatures.

pub mod binary;
pub mod daemon;
pub mod fake_merchant;
pub mod fake_provider;
pub mod http;
pub mod sign;

pub use daemon::TestDaemon;
