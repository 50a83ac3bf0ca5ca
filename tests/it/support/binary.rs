//! Running the built `payhook` binary: waiting until it reports ready.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until `bin healthcheck --config cfg` succeeds, bounded by `limit`. Panics if the
/// daemon exits during start-up or does not become ready in time, so no test waits on a
/// dead process or sleeps a fixed time for readiness.
pub fn wait_ready(bin: &Path, cfg: &Path, child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let ok = Command::new(bin)
            .args(["healthcheck", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("payhook exited during start-up: {status}");
        }
        assert!(Instant::now() < deadline, "payhook did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}
