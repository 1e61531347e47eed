//! Real faults for tests: a tiny tmpfs that can be filled up and freed, and
//! a PostgreSQL server of the test's own that can be stopped, started and
//! paused. Both need root (mount, and running `postgres` as its own user);
//! scripts/test runs as root.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::postgres_install;
use crate::support::{temp_dir, unused_port};

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
        let bin = postgres_install::bin_dir();
        let (uid, gid) = postgres_install::postgres_user();
        let dir = temp_dir();
        postgres_install::init(&bin, &dir, "pgdata", (uid, gid));
        let mut pg = OwnPostgres {
            port: unused_port(),
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
        assert!(
            postgres_install::wait_ready(&self.bin, self.port),
            "postgres did not come up"
        );
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

/// A Redis of our own, so it can be killed without disturbing other tests.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub fn start(port: u16) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        OwnRedis {
            port,
            child: Some(child),
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the fault proxy did, for the chaos report.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: std::sync::atomic::AtomicU64,
    pub dropped: std::sync::atomic::AtomicU64,
    pub cut: std::sync::atomic::AtomicU64,
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that mistreats each
/// connection it carries: added latency on every chunk, and for some
/// connections, after a few seconds, a drop (both sides closed) or a cut
/// (half of a chunk forwarded, so a WebSocket frame ends mid-way, then
/// closed). `calm` stops new drops and cuts, so a run can end quietly.
pub struct FaultProxy {
    pub port: u16,
    pub stats: std::sync::Arc<ProxyStats>,
    pub calm: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: u16) -> FaultProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        use rand::Rng;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(ProxyStats::default());
        let calm = Arc::new(AtomicBool::new(false));
        let (task_stats, task_calm) = (stats.clone(), calm.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                task_stats.connections.fetch_add(1, Ordering::Relaxed);
                let (stats, calm) = (task_stats.clone(), task_calm.clone());
                let (latency_ms, fate, after_ms) = {
                    let mut rng = rand::thread_rng();
                    (
                        rng.gen_range(0..40u64),
                        rng.gen_range(0..10u8),
                        rng.gen_range(1_000..8_000u64),
                    )
                };
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let doom = tokio::time::Instant::now() + Duration::from_millis(after_ms);
                    // 0–5: clean but slow; 6–7: dropped; 8–9: cut mid-frame.
                    let fault = match fate {
                        6 | 7 => Some(false),
                        8 | 9 => Some(true),
                        _ => None,
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let latency = Duration::from_millis(latency_ms);
                    let up = pipe(cr, sw, latency, None);
                    let down = pipe(sr, cw, latency, fault.map(|cut| (doom, cut, calm)));
                    match tokio::select! { r = up => r, r = down => r } {
                        Ended::Dropped => stats.dropped.fetch_add(1, Ordering::Relaxed),
                        Ended::Cut => stats.cut.fetch_add(1, Ordering::Relaxed),
                        Ended::Closed => 0,
                    };
                });
            }
        });
        FaultProxy {
            port,
            stats,
            calm,
            task,
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Ended {
    Closed,
    Dropped,
    Cut,
}

/// Copies `from` to `to`, a chunk at a time, each after `latency`. With a
/// fault `(when, cut, calm)`: at `when` (unless calm by then) it stops, after
/// forwarding only half of the next chunk if `cut`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    latency: Duration,
    fault: Option<(
        tokio::time::Instant,
        bool,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    )>,
) -> Ended {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Ended::Closed,
            Ok(n) => n,
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some((when, cut, calm)) = &fault
            && tokio::time::Instant::now() >= *when
            && !calm.load(std::sync::atomic::Ordering::Relaxed)
        {
            if *cut {
                let _ = to.write_all(&buf[..n.div_ceil(2)]).await;
                return Ended::Cut;
            }
            return Ended::Dropped;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return Ended::Closed;
        }
    }
}
