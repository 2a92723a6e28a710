//! The server under test as a child process: started from an empty directory, read through
//! /proc for CPU time and resident memory, killed at the end.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct Server {
    child: Child,
    pub pid: u32,
    pub url: String,
}

impl Server {
    /// The server at `binary` in `dir`, on the database at `database` (a URL), generating
    /// with the fake at `ollama`, with `env` on top.
    pub fn start(
        binary: &str,
        dir: &Path,
        database: &str,
        ollama: &str,
        jobs: usize,
        env: &[(&str, String)],
    ) -> std::io::Result<Self> {
        let port = free_port()?;
        let child = Command::new(std::fs::canonicalize(binary)?)
            .current_dir(dir)
            .env("AIWALL_SERVER__ADDR", format!("127.0.0.1:{port}"))
            .env("AIWALL_DATABASE__URL", database)
            .env("AIWALL_OLLAMA__URL", ollama)
            .env("AIWALL_JOBS__CONCURRENCY", jobs.to_string())
            .env("AIWALL_LIMITS__AI_POSTS_PER_MINUTE", "100000")
            .env("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "100000")
            .env("AIWALL_LIMITS__QUEUED_PER_ADDRESS", "100000")
            .env("AIWALL_LIMITS__QUEUE_MAX", "100000")
            .env("AIWALL_LIMITS__SSE_PER_CLIENT", "100000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(std::fs::File::create(dir.join("aiwall.log"))?))
            .spawn()?;
        Ok(Self {
            pid: child.id(),
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    pub async fn wait_ready(&self) -> Result<(), String> {
        for _ in 0..200 {
            if reqwest::get(format!("{}/healthz", self.url))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the server did not become healthy".into())
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> std::io::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        Ok(status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_default())
    }

    /// User + system CPU time in clock ticks.
    pub fn cpu_ticks(&self) -> std::io::Result<u64> {
        cpu_ticks(&self.pid.to_string())
    }

    pub fn stop(self) {}
}

/// A bench that stops, or fails half-way, leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// User + system CPU time in clock ticks of the process `pid` (`self` for this one).
pub fn cpu_ticks(pid: &str) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_default()
    };
    Ok(field(11) + field(12))
}

/// Clock ticks per second for /proc times (USER_HZ, 100 on Linux).
pub fn clock_ticks() -> u64 {
    100
}
