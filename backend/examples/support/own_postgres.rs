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

pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl OwnPostgres {
    pub fn start() -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .max()
            .expect("a PostgreSQL version with bin/postgres");
        let (uid, gid) = (id("-u"), id("-g"));
        let dir = std::env::temp_dir().join(format!("hearth-bench-pg-{}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let chown = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let initdb = Command::new(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(initdb.success(), "initdb failed");
        let port = super::process::free_port();
        // The stock settings but for what the statistics need and room for
        // several nodes' pools; fsync stays on, as in production.
        let child = Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
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
        for _ in 0..300 {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return own;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres did not come up");
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

fn id(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
