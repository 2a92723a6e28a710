//! A real nginx (Debian's package) in front of the real binary, for the reverse-proxy and
//! load-balancer tests: the README's snippet, or `deploy/nginx.conf` as it ships.
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::{Child, Command};

use crate::test_app::free_port;

/// A real nginx, running in the foreground as the current user with every file in its own
/// directory.
pub struct Nginx {
    _child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx as a reverse proxy (`proxy_pass`) to `upstream`, as the README's snippet
    /// configures it.
    pub async fn start(upstream: &str) -> Nginx {
        Self::start_with(|port| proxy_to(port, upstream)).await
    }

    /// nginx as `deploy/nginx.conf` configures it, in front of the instances at `upstreams`
    /// (in place of the file's 127.0.0.1:3001, :3002, …).
    pub async fn start_deployed(upstreams: &[&str]) -> Nginx {
        let deployed = include_str!("../../../deploy/nginx.conf");
        let upstreams: Vec<String> = upstreams
            .iter()
            .map(|url| url.trim_start_matches("http://").to_string())
            .collect();
        Self::start_with(|port| {
            let mut conf = deployed.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
            let listed: Vec<&str> = deployed
                .lines()
                .filter(|l| l.trim_start().starts_with("server 127.0.0.1:"))
                .collect();
            assert_eq!(
                listed.len(),
                upstreams.len(),
                "deploy/nginx.conf lists {listed:?}"
            );
            for (line, upstream) in listed.iter().zip(&upstreams) {
                conf = conf.replace(line, &format!("    server {upstream};"));
            }
            conf
        })
        .await
    }

    /// nginx with `site(port)` in its `http` block.
    async fn start_with(site: impl FnOnce(u16) -> String) -> Nginx {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir.path(), &site(port))).unwrap();
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
            Err(_) => panic!("nginx did not proxy within 10 s:\n{}", nginx.log()),
        }
    }

    pub fn log(&self) -> String {
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

/// nginx's main configuration around `site`, every file of it in `dir`.
fn nginx_conf(dir: &Path, site: &str) -> String {
    let dir = dir.display();
    format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{site}
}}
"#
    )
}

/// The README's snippet: one server, proxied to `upstream`.
fn proxy_to(port: u16, upstream: &str) -> String {
    format!(
        r#"
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
"#
    )
}
