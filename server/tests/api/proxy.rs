//! Behind a real reverse proxy: Debian's nginx in front of the real binary. Clients bind to
//! distinct loopback addresses (127.0.0.2, 127.0.0.3, …) so that nginx sees distinct peers;
//! the server trusts only 127.0.0.1, where nginx's upstream connections come from.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::{Child, Command};

use crate::{deadline::eventually, process::AppProcess, test_app::free_port};

/// Open live streams per client in these tests.
const STREAMS_PER_CLIENT: u32 = 2;

/// nginx as a reverse proxy (`proxy_pass`) to `upstream`, as the README's snippet configures it,
/// running in the foreground as the current user with every file in its own directory.
struct Nginx {
    _child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: &str) -> Nginx {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir.path(), port, upstream)).unwrap();
        let log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("nginx.log"))
                .map(Stdio::from)
                .unwrap()
        };
        let mut child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"])
            .stdout(log())
            .stderr(log())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let url = format!("http://127.0.0.1:{port}");
        let healthz = format!("{url}/healthz");
        // Ready when the app answers through it; an nginx that exits has said why in its log.
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(status);
                }
                if reqwest::get(&healthz)
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let nginx = Nginx {
            _child: child,
            url,
            dir,
        };
        match ready {
            Ok(Ok(())) => nginx,
            Ok(Err(status)) => panic!("nginx exited ({status}):\n{}", nginx.log()),
            Err(_) => panic!(
                "nginx did not proxy {upstream} within 10 s:\n{}",
                nginx.log()
            ),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nginx.log")).unwrap_or_default()
    }
}

/// nginx must be installed (`scripts/ensure-tools` installs Debian's package): without it this
/// test fails rather than skips, since skipping would hide that the proxy path is untested.
fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::var_os("NGINX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].map(PathBuf::from))
        .chain(std::env::split_paths(&path).map(|d| d.join("nginx")));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed, and the reverse-proxy tests need a real one: run \
             scripts/ensure-tools (or `apt-get install nginx`), or set NGINX to its path"
            )
        })
}

fn nginx_conf(dir: &Path, port: u16, upstream: &str) -> String {
    let dir = dir.display();
    format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"#
    )
}

/// A client whose connections come from `127.0.0.<n>`.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap()
}

/// Opens the wall's live stream, saying it comes from `spoofed` (every client may say so),
/// and returns the response, which holds the stream open while it lives.
async fn open_wall_stream(
    client: &reqwest::Client,
    base: &str,
    spoofed: &str,
) -> reqwest::Response {
    client
        .get(format!("{base}/api/v1/wall/events"))
        .header("X-Forwarded-For", spoofed)
        .send()
        .await
        .unwrap()
}

async fn app_behind_proxy(dir: &Path) -> AppProcess {
    AppProcess::start(
        dir,
        0,
        &[
            ("AIWALL_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1"]"#.into()),
            (
                "AIWALL_LIMITS__SSE_PER_CLIENT",
                STREAMS_PER_CLIENT.to_string(),
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn behind_nginx_each_visitor_has_their_own_stream_limit() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_behind_proxy(dir.path()).await;
    let nginx = Nginx::start(&app.url).await;

    // Three visitors, each opening their quota: through nginx all are one TCP peer, 127.0.0.1,
    // which without trusted_proxies would refuse the third stream already.
    let mut open = Vec::new();
    for n in 2..=4 {
        let visitor = client_from(n);
        for i in 0..STREAMS_PER_CLIENT {
            let response = open_wall_stream(&visitor, &nginx.url, &format!("10.9.{n}.{i}")).await;
            assert_eq!(
                response.status(),
                200,
                "visitor 127.0.0.{n}, stream {i}: {}\nserver log:\n{}",
                response.text().await.unwrap_or_default(),
                app.log()
            );
            open.push(response);
        }
    }

    // One visitor past their own limit is refused, whatever X-Forwarded-For they send along
    // (nginx appends their real address, and the server reads the rightmost).
    let refused = open_wall_stream(&client_from(3), &nginx.url, "10.9.9.9").await;
    assert_eq!(refused.status(), 429, "{}", refused.text().await.unwrap());

    // Closing one of theirs frees a place for them.
    open.remove(2);
    let again = eventually(Duration::from_secs(5), "a freed stream slot", || async {
        let r = open_wall_stream(&client_from(3), &nginx.url, "10.9.9.9").await;
        (r.status() == 200).then_some(r)
    })
    .await;
    open.push(again);
}

#[tokio::test]
async fn a_direct_client_cannot_choose_its_address_with_forwarding_headers() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_behind_proxy(dir.path()).await;
    // 127.0.0.5 is not a trusted proxy: its X-Forwarded-For and Forwarded headers are ignored,
    // so a fresh made-up address on every request does not buy it more streams.
    let direct = client_from(5);
    let mut open = Vec::new();
    for i in 0..STREAMS_PER_CLIENT {
        let response = direct
            .get(format!("{}/api/v1/wall/events", app.url))
            .header("X-Forwarded-For", format!("203.0.113.{i}"))
            .header("Forwarded", format!("for=198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    let refused = direct
        .get(format!("{}/api/v1/wall/events", app.url))
        .header("X-Forwarded-For", "203.0.113.99")
        .header("Forwarded", "for=198.51.100.99")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        429,
        "a spoofed header let a direct client past its limit"
    );
    // Its neighbour on another address is not affected.
    let neighbour = open_wall_stream(&client_from(6), &app.url, "203.0.113.1").await;
    assert_eq!(neighbour.status(), 200);
}
