//! The real `aiwall` binary as a child process, for crash, signal and restart tests.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

pub struct AppProcess {
    child: Child,
    pub url: String,
    pub port: u16,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

impl AppProcess {
    /// Starts the binary in `dir` (its database lives there) on `port` (0 = any free one).
    pub async fn start(dir: &Path, port: u16, env: &[(&str, String)]) -> AppProcess {
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            port
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let child = spawn(dir, port, &env);
        let app = AppProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir: dir.to_owned(),
            env,
        };
        app.wait_healthy().await;
        app
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if reqwest::get(format!("{}/healthz", self.url))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiwall did not become healthy on {}", self.url);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9: no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `within` (without blocking the test's runtime,
    /// where the fake Ollama runs).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Starts the binary again on the same port and database, with other settings.
    pub async fn restart_with(&mut self, env: &[(&str, String)]) {
        for (k, v) in env {
            self.env.retain(|(name, _)| name != k);
            self.env.push((k.to_string(), v.clone()));
        }
        self.restart().await;
    }

    /// Starts the binary again on the same port and database.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.dir, self.port, &self.env);
        self.wait_healthy().await;
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's log, kept beside its database (and printed by tests that fail).
fn log_file(dir: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

impl AppProcess {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

fn spawn(dir: &Path, port: u16, env: &[(String, String)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aiwall"));
    command
        .current_dir(dir)
        .env("AIWALL_SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env(
            "AIWALL_DATABASE__URL",
            format!("sqlite://{}", dir.join("wall.db").display()),
        )
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(log_file(dir))
        .stderr(log_file(dir));
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("start aiwall")
}
