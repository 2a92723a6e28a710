//! `fake-ollama`: runs the fake model server until Ctrl-C, printing the URL it listens on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use fake_ollama::{FakeConfig, FakeOllama, DIRECTIVES_HELP};

/// A stand-in model server that speaks Ollama's wire protocol (chat, generate, tags, ps,
/// version, show) and the OpenAI-compatible one (chat completions, models) as llama.cpp or
/// vLLM do, for tests, demos and benchmarks. No GPU, no model.
///
/// The first line on stdout is the base URL, e.g. `http://127.0.0.1:11434`.
#[derive(Debug, Parser)]
#[command(name = "fake-ollama", version, after_long_help = DIRECTIVES_HELP)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Port to listen on (0 picks a free one); 11434 is Ollama's own, 8080 llama-server's,
    /// 8000 vLLM's.
    #[arg(long, default_value_t = 11434)]
    port: u16,
    #[command(flatten)]
    config: FakeConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let addr = SocketAddr::new(cli.host, cli.port);
    let fake = match FakeOllama::start_on(addr, cli.config).await {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!("fake-ollama: cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", fake.url());
    eprintln!(
        "fake-ollama: serving {:?}; Ctrl-C stops",
        fake.config().models
    );
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("fake-ollama: cannot wait for Ctrl-C: {error}");
    }
    fake.stop().await;
    ExitCode::SUCCESS
}
