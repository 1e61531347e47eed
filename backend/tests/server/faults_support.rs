//! Real faults for tests: a tiny tmpfs that can be filled up and freed, and
//! a PostgreSQL server of the test's own that can be stopped, started and
//! paused. Both need root (mount, and running `postgres` as its own user);
//! scripts/test runs as root.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, temp_dir};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
    filler: PathBuf,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = temp_dir();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (scripts/test runs as root)"
        );
        let filler = dir.join("filler");
        Tmpfs { dir, filler }
    }

    /// Writes a file until the file system says it is full.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(&self.filler).unwrap();
        let chunk = vec![0x55u8; 4096];
        loop {
            match file.write_all(&chunk).and_then(|_| file.sync_data()) {
                Ok(()) => {}
                Err(err) => {
                    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC, got {err}");
                    return;
                }
            }
        }
    }

    pub fn free(&self) {
        std::fs::remove_file(&self.filler).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL server of the test's own on a free port, with trust auth,
/// run as the `postgres` user.
pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    uid: u32,
    gid: u32,
    child: Option<Child>,
}

impl OwnPostgres {
    pub fn start() -> OwnPostgres {
        let bin = postgres_bin_dir();
        let (uid, gid) = (id("-u"), id("-g"));
        let dir = temp_dir();
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&data).unwrap();
        chown_r(&dir, uid, gid);
        let status = Command::new(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        let mut pg = OwnPostgres {
            port: free_port(),
            dir,
            bin,
            uid,
            gid,
            child: None,
        };
        pg.start_server();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_server(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("pgdata"))
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&self.dir)
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=60"])
            .uid(self.uid)
            .gid(self.gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres runs");
        self.child = Some(child);
        for _ in 0..300 {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres did not come up");
    }

    /// A fast shutdown: connections are terminated, nothing committed is lost.
    pub fn stop_server(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "INT");
            let _ = child.wait();
        }
    }

    /// SIGSTOP to every process of the server: it keeps its sockets open
    /// but answers nothing.
    pub fn pause(&self) {
        signal_group(self.child.as_ref().expect("running"), "STOP");
    }

    pub fn resume(&self) {
        signal_group(self.child.as_ref().expect("running"), "CONT");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            signal_group(child, "CONT");
        }
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status();
}

/// Signals the postmaster and its children (each backend runs in a session
/// of its own, so a process group would not reach them).
fn signal_group(child: &Child, name: &str) {
    let _ = Command::new("pkill")
        .args([&format!("-{name}"), "-P", &child.id().to_string()])
        .status();
    signal(child, name);
}

fn postgres_bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL version with bin/postgres")
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

fn chown_r(path: &Path, uid: u32, gid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}
