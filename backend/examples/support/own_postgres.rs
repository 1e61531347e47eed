//! A PostgreSQL server of the benchmark's own, with `pg_stat_statements`
//! loaded, so a run can count the statements each message costs and the
//! server's CPU without anything else's in it. (The machine's shared server
//! would need a restart to load the module; a benchmark has no business
//! restarting it.) Needs root: the server runs as the `postgres` user.
//! Stopped and removed on drop.

// Each benchmark uses part of this.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[path = "../../tests/shared/postgres_install.rs"]
mod postgres_install;

pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl OwnPostgres {
    pub fn start() -> OwnPostgres {
        let bin = postgres_install::bin_dir();
        let (uid, gid) = postgres_install::postgres_user();
        let dir = std::env::temp_dir().join(format!("hearth-bench-pg-{}", std::process::id()));
        postgres_install::init(&bin, &dir, "data", (uid, gid));
        let port = super::process::free_port();
        // The stock settings but for what the statistics need and room for
        // several nodes' pools; fsync stays on, as in production.
        let child = Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&dir)
            .args([
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.track=all",
                "-c",
                "max_connections=300",
            ])
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres runs");
        // Stopped by `drop` from here on, should it not come up.
        let own = OwnPostgres { port, dir, child };
        assert!(
            postgres_install::wait_ready(&bin, port),
            "postgres did not come up"
        );
        own
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// CPU time of the server: the postmaster and every process it started
    /// (backends, the WAL writer, the checkpointer …) that is still running.
    pub fn cpu_time(&self) -> Duration {
        let postmaster = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children"))
                .unwrap_or_default();
        std::iter::once(postmaster)
            .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
            .map(super::process::cpu_time)
            .sum()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // A fast shutdown.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
