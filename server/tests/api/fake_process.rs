//! The fake model server (`target/release/fake-ollama`, built by `scripts/test`) as a child
//! process, for tests that kill a model server the way a crash does.
use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::deadline::eventually;

pub struct FakeProcess {
    child: Child,
    pub port: u16,
    args: Vec<String>,
}

fn binary() -> PathBuf {
    std::env::var_os("FAKE_OLLAMA_BIN").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/release/fake-ollama"
            ))
        },
        PathBuf::from,
    )
}

impl FakeProcess {
    /// Starts the fake on a free port with `args` (its flags, e.g. `--api openai`).
    pub async fn start(args: &[String]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = args.to_vec();
        let child = spawn(port, &args);
        let fake = Self { child, port, args };
        fake.wait_listening().await;
        fake
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// kill -9, as a crash: open replies break off, new connections are refused.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Starts it again on the same port with the same flags.
    pub async fn restart(&mut self) {
        self.child = spawn(self.port, &self.args);
        self.wait_listening().await;
    }

    async fn wait_listening(&self) {
        let addr = format!("127.0.0.1:{}", self.port);
        eventually(
            Duration::from_secs(10),
            &format!("the fake on {addr}"),
            || async { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) },
        )
        .await;
    }
}

fn spawn(port: u16, args: &[String]) -> Child {
    let binary = binary();
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --release -p fake-ollama` (scripts/test does)",
        binary.display()
    );
    Command::new(binary)
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}
