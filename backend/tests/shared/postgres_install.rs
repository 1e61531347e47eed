//! This machine's PostgreSQL installation, for a server of a test's or a
//! benchmark's own: where the server binaries are, the `postgres` user's
//! ids (the server refuses to run as root), a data directory made with
//! `initdb`, and waiting until a started server accepts connections.
//! Shared by the fault tests (tests/server/faults_support.rs) and the
//! benchmarks (examples/support/own_postgres.rs), whose servers differ in
//! settings and in what they are for.

// Each includer uses part of this.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The newest installed version's `bin/`.
pub fn bin_dir() -> PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .max()
        .expect("a PostgreSQL version with bin/postgres")
}

/// The `postgres` user's uid and gid.
pub fn postgres_user() -> (u32, u32) {
    (id("-u"), id("-g"))
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

/// Gives `dir` (created if missing) to the `postgres` user and makes a
/// database cluster in `dir/data_name`, trusting local connections.
pub fn init(bin: &Path, dir: &Path, data_name: &str, (uid, gid): (u32, u32)) {
    let data = dir.join(data_name);
    std::fs::create_dir_all(&data).unwrap();
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(chown.success());
    let initdb = Command::new(bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
        .arg(&data)
        .uid(uid)
        .gid(gid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("initdb runs");
    assert!(initdb.success(), "initdb failed");
}

/// Waits (up to 15 s) until the server on `port` accepts connections.
pub fn wait_ready(bin: &Path, port: u16) -> bool {
    for _ in 0..300 {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
