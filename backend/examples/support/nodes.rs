//! Several Hearth nodes behind one fresh PostgreSQL database and a Redis
//! prefix of their own, as child processes, for the multi-node benchmarks
//! (`crowd.rs`, `spread.rs`, which also include `process.rs`). `stop`
//! removes everything.

// Each benchmark uses part of this.
#![allow(dead_code)]

use std::time::Duration;

pub struct Nodes {
    pub prefix: String,
    pub servers: Vec<(u16, tokio::process::Child)>,
    admin: sqlx::PgPool,
    dir: std::path::PathBuf,
}

/// A command run with the soft open-file limit raised to the hard one.
pub fn raised(program: &std::path::Path, args: &[String]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)"; exec "$0" "$@""#)
        .arg(program)
        .args(args);
    command
}

pub fn redis_url() -> String {
    std::env::var("HEARTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

impl Nodes {
    /// Starts `count` nodes (`sh` execs into each, so a child's pid is the
    /// node's) with every per-client limit lifted, and waits until they
    /// listen.
    pub async fn start(count: usize, name: &str) -> Nodes {
        let admin_url = std::env::var("HEARTH_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        Nodes::start_at(count, name, &admin_url).await
    }

    /// The same, with the database created on the server `admin_url` names.
    pub async fn start_at(count: usize, name: &str, admin_url: &str) -> Nodes {
        let database = format!("hearth_{name}_{}", std::process::id());
        let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&admin)
            .await
            .unwrap();
        let database_url = format!("{}/{database}", admin_url.rsplit_once('/').unwrap().0);
        let dir = std::env::temp_dir().join(format!("hearth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut servers = Vec::new();
        for n in 0..count {
            let port = super::process::free_port();
            let args: Vec<String> = [
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--node-id",
                &format!("{name}{n}"),
                "--database-url",
                &database_url,
                "--redis-url",
                &redis_url(),
                "--redis-prefix",
                &database,
                "--allow-guests",
                "--auth-per-ip-per-minute",
                "100000000",
                "--auth-per-username-per-minute",
                "100000000",
                "--max-connections-per-ip",
                "100000000",
                "--max-connections-per-user",
                "100000",
                "--max-http-per-ip",
                "100000000",
                "--api-per-ip-per-minute",
                "100000000",
                // One reader checks every room's history at the end.
                "--api-per-token-per-minute",
                "100000000",
                // Every client here shares one address (and, behind
                // node_dies' balancers, the balancer's); per connection and
                // per user, replays keep their limits.
                "--replay-bytes-per-ip-per-sec",
                "1073741824",
                "--rooms-per-user-per-hour",
                "100000000",
                "--rooms-per-ip-per-hour",
                "100000000",
                "--send-rate",
                "100000",
                "--send-burst",
                "100000",
                "--data-dir",
                dir.to_str().unwrap(),
                "--static-dir",
                dir.to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            // Its log, while it runs (removed by `stop`).
            let log = std::fs::File::create(dir.join(format!("node{n}.log"))).unwrap();
            let child = raised(&super::process::release_dir().join("hearth"), &args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            servers.push((port, child));
        }
        for (port, _) in &servers {
            let mut up = false;
            for _ in 0..400 {
                if tokio::net::TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .is_ok()
                {
                    up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(up, "a node did not start");
        }
        Nodes {
            prefix: database,
            servers,
            admin,
            dir,
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.servers
            .iter()
            .map(|(_, child)| child.id().unwrap())
            .collect()
    }

    /// Stops the nodes and drops their database.
    pub async fn stop(mut self) {
        for (_, child) in &mut self.servers {
            let _ = child.kill().await;
        }
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.prefix))
            .execute(&self.admin)
            .await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
