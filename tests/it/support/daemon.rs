//! `TestDaemon`: the real daemon (`payhook::serve`) on 127.0.0.1:0 with a fresh SQLite file.

use payhook::config::Config;
use payhook::Ctx;
use rusqlite::Connection;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestDaemon {
    pub addr: SocketAddr,
    /// The admin listener's address, when the config has an `[admin]` section.
    pub admin_addr: Option<SocketAddr>,
    pub ctx: Ctx,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestDaemon {
    /// Starts a daemon with `config` (TOML; its top-level keys first). The store path is
    /// appended, in a new temporary directory.
    pub async fn start(config: &str) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, config).await
    }

    /// Starts a daemon whose files live in `dir` (to restart on the same database).
    ///
    /// The background reconciler is off unless the config has a `[reconciler]` section:
    /// tests drive `reconcile::step` themselves, and a loop running beside them would both
    /// race their assertions and poll the providers' real default URLs.
    pub async fn start_in(dir: tempfile::TempDir, config: &str) -> TestDaemon {
        let reconciler = if config.contains("[reconciler]") {
            ""
        } else {
            "[reconciler]\nenabled = false\n"
        };
        let text = format!("{config}\n{reconciler}[store]\npath = \"payhook.db\"\n");
        let cfg = Config::from_toml(&text, dir.path()).expect("test config is valid");
        Self::start_with(dir, cfg).await
    }

    pub async fn start_with(dir: tempfile::TempDir, cfg: Config) -> TestDaemon {
        let ctx = Ctx::new(cfg).expect("store opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = match ctx.config.admin {
            Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            None => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(payhook::serve_with_admin(
            ctx.clone(),
            listener,
            admin,
            async {
                let _ = stopped.await;
            },
        ));
        TestDaemon {
            addr,
            admin_addr,
            ctx,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("payhook.db")
    }

    /// A separate read connection to the daemon's database, for assertions.
    pub fn db(&self) -> Connection {
        let c = Connection::open(self.db_path()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }

    /// `transactions.id` of the ZengaPay transaction `reference`.
    pub fn zp_txn_id(&self, reference: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT id FROM transactions WHERE provider = 'zengapay' AND provider_ref = ?1",
                [reference],
                |r| r.get(0),
            )
            .unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Stops the daemon and waits for it to drain; returns the directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        let TestDaemon { dir, ctx, .. } = self;
        drop(ctx);
        dir
    }
}
