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
    pub fn start(
        binary: &str,
        dir: &Path,
        db: &Path,
        ollama: &str,
        jobs: usize,
    ) -> std::io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(std::fs::canonicalize(binary)?)
            .current_dir(dir)
            .env("AIWALL_SERVER__ADDR", format!("127.0.0.1:{port}"))
            .env("AIWALL_DATABASE__URL", format!("sqlite://{}", db.display()))
            .env("AIWALL_OLLAMA__URL", ollama)
            .env("AIWALL_JOBS__CONCURRENCY", jobs.to_string())
            .env("AIWALL_LIMITS__AI_POSTS_PER_MINUTE", "100000")
            .env("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "100000")
            .env("AIWALL_LIMITS__QUEUE_MAX", "100000")
            .env("AIWALL_LIMITS__SSE_PER_CLIENT", "100000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
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
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
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

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second for /proc times (USER_HZ, 100 on Linux).
pub fn clock_ticks() -> u64 {
    100
}
