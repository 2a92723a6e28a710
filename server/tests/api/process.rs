//! The real `aiwall` binary as a child process, for crash, signal and restart tests.
use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use server::db::{scratch::ScratchDb, Engine};
use tokio::process::{Child, Command};

use crate::{deadline::eventually, test_app::TEST_COOKIE_KEY};

/// How long the binary may take to start answering.
const START: Duration = Duration::from_secs(20);

pub struct AppProcess {
    child: Child,
    pub url: String,
    pub port: u16,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    /// The open-file limit (soft, hard) the process starts with, if not the test's own.
    file_limit: Option<(u64, u64)>,
    /// The binary: this build's, or the release one `scripts/build` made.
    binary: PathBuf,
    /// The PostgreSQL database of a server started on one, dropped after it.
    _scratch: Option<ScratchDb>,
}

impl AppProcess {
    /// Starts the binary in `dir` (its database lives there) on `port` (0 = any free one).
    pub async fn start(dir: &Path, port: u16, env: &[(&str, String)]) -> AppProcess {
        Self::start_limited(dir, port, env, None).await
    }

    /// [`AppProcess::start`] on `engine`: on PostgreSQL, a fresh database (and the cookie key
    /// PostgreSQL requires) instead of the SQLite file in `dir`.
    pub async fn start_on(
        engine: Engine,
        dir: &Path,
        port: u16,
        env: &[(&str, String)],
    ) -> AppProcess {
        let Engine::Postgres = engine else {
            return Self::start(dir, port, env).await;
        };
        let scratch = ScratchDb::create().await;
        let mut env = env.to_vec();
        env.push(("AIWALL_DATABASE__URL", scratch.url.clone()));
        env.push(("AIWALL_SERVER__COOKIE_KEY", TEST_COOKIE_KEY.into()));
        let mut app = Self::start(dir, port, &env).await;
        app._scratch = Some(scratch);
        app
    }

    /// Starts the binary with the open-file limit `(soft, hard)`, as `ulimit -n` would.
    pub async fn start_limited(
        dir: &Path,
        port: u16,
        env: &[(&str, String)],
        file_limit: Option<(u64, u64)>,
    ) -> AppProcess {
        let port = if port == 0 {
            crate::test_app::free_port()
        } else {
            port
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Self::start_binary(
            dir,
            port,
            env,
            file_limit,
            PathBuf::from(env!("CARGO_BIN_EXE_aiwall")),
        )
        .await
    }

    /// Starts the release binary (`target/release/aiwall`, which `scripts/build` makes), as a
    /// deployment runs it.
    pub async fn start_release(dir: &Path, port: u16, env: &[(&str, String)]) -> AppProcess {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let binary = target.join("release/aiwall");
        assert!(
            binary.exists(),
            "{} is missing: build it with scripts/build (scripts/test does)",
            binary.display()
        );
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let port = if port == 0 {
            crate::test_app::free_port()
        } else {
            port
        };
        Self::start_binary(dir, port, env, None, binary).await
    }

    async fn start_binary(
        dir: &Path,
        port: u16,
        env: Vec<(String, String)>,
        file_limit: Option<(u64, u64)>,
        binary: PathBuf,
    ) -> AppProcess {
        let child = spawn(&binary, dir, port, &env, file_limit);
        let app = AppProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir: dir.to_owned(),
            env,
            file_limit,
            binary,
            _scratch: None,
        };
        app.wait_healthy().await;
        app
    }

    /// Nothing announces that the server listens but the port answering: ask `/healthz`.
    async fn wait_healthy(&self) {
        let healthz = format!("{}/healthz", self.url);
        eventually(
            START,
            &format!("aiwall healthy on {}", self.url),
            || async {
                reqwest::get(&healthz)
                    .await
                    .is_ok_and(|r| r.status().is_success())
                    .then_some(())
            },
        )
        .await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process has not been reaped")
    }

    /// kill -9: no chance to clean up.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub async fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .map(|status| status.unwrap())
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
        self.child = spawn(
            &self.binary,
            &self.dir,
            self.port,
            &self.env,
            self.file_limit,
        );
        self.wait_healthy().await;
    }

    /// The server's log, kept beside its database (and printed by tests that fail).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Waits until the server has logged `line`: for a step it announces nowhere else.
    pub async fn wait_for_log(&self, line: &str, within: Duration) {
        eventually(within, &format!("the log says {line:?}"), || async {
            self.log().contains(line).then_some(())
        })
        .await;
    }
}

fn log_file(dir: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// Starts the binary in `dir` on `port`, expecting it to refuse to start: its exit status and
/// what it printed.
pub async fn start_refused(dir: &Path, port: u16, env: &[(&str, String)]) -> (ExitStatus, String) {
    run_to_end(dir, port, &[], env).await
}

/// Runs the binary in `dir` with `args` (a command such as `migrate-to`) to its end: its exit
/// status, and what it printed (standard output, then standard error).
pub async fn run_command(
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> (ExitStatus, String) {
    run_to_end(dir, 0, args, env).await
}

/// Runs the binary with `args` until it exits (within [`START`]): its status, and what it
/// printed on standard output, then standard error.
async fn run_to_end(
    dir: &Path,
    port: u16,
    args: &[&str],
    env: &[(&str, String)],
) -> (ExitStatus, String) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut command = command(
        Path::new(env!("CARGO_BIN_EXE_aiwall")),
        dir,
        port,
        &env,
        None,
    );
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::time::timeout(START, command.output())
        .await
        .expect("aiwall exits instead of serving")
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status, said)
}

fn spawn(
    binary: &Path,
    dir: &Path,
    port: u16,
    env: &[(String, String)],
    file_limit: Option<(u64, u64)>,
) -> Child {
    let mut command = command(binary, dir, port, env, file_limit);
    command.stdout(log_file(dir)).stderr(log_file(dir));
    command.spawn().expect("start aiwall")
}

fn command(
    binary: &Path,
    dir: &Path,
    port: u16,
    env: &[(String, String)],
    file_limit: Option<(u64, u64)>,
) -> Command {
    // util-linux's prlimit sets the limit and then execs the binary: the pid stays the server's.
    let mut command = match file_limit {
        Some((soft, hard)) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={soft}:{hard}"))
                .arg("--")
                .arg(binary);
            c
        }
        None => Command::new(binary),
    };
    command
        .current_dir(dir)
        .env("AIWALL_SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env(
            "AIWALL_DATABASE__URL",
            format!("sqlite://{}", dir.join("wall.db").display()),
        )
        .env("RUST_LOG", "info,sqlx=warn")
        // A test that fails or ends leaves no server behind.
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command
}
