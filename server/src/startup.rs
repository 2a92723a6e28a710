//! Building the server from its configuration and running it until a shutdown signal.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use leptos::config::LeptosOptions;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    backend::{Backend, ClientOptions, OllamaClient, OpenAiClient},
    bus::{self, Outbox},
    config::BackendKind,
    config::{Config, ServerConfig},
    db::{Db, DbLock, Engine},
    edge::{self, EdgeOptions, Timeouts},
    hub::Hub,
    identity,
    jobs::Jobs,
    limits::Limits,
    metrics,
    pool::Pool,
    routes,
    state::AppState,
};

/// Why the server could not start, in words for the person starting it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Database(#[from] crate::db::DbError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("bad model server configuration: {0}")]
    Backend(String),
    #[error("{0}")]
    CookieKey(#[from] identity::KeyError),
    #[error("cannot serve /metrics: {0}")]
    Metrics(String),
}

/// A server that is bound to its port and ready to run.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    /// `/metrics`'s own listener and the exporter, when `server.metrics_addr` is set.
    metrics: Option<(TcpListener, PrometheusHandle)>,
    /// The task telling the other instances this one's changes, when there are any: awaited
    /// before the database closes, so that the jobs handed back at shutdown are heard.
    bus_sender: Option<tokio::task::JoinHandle<()>>,
}

/// How long the last notes to the other instances may take at shutdown.
const LAST_NOTES: Duration = Duration::from_secs(2);
/// A quiet wall stream gets a comment this often, so that proxies keep it open.
const WALL_KEEP_ALIVE: Duration = Duration::from_secs(15);

impl Server {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        // Leptos's server rendering spawns its work on tokio; an error means it already is.
        let _ = any_spawner::Executor::init_tokio();
        let config = Arc::new(config);
        let pool = Arc::new(pool(&config)?);
        // In this order, so that a server that cannot run (a bad setting, another server on the
        // file, a taken port) stops before it changes the database: the database's lock first,
        // then the port; only then migrations, the cookie key, and the recovery of the jobs a
        // crash left running.
        let db_lock = DbLock::take(&config.database.url).await?;
        let addr = config.server.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let metrics = match config.server.metrics_addr().map_err(StartError::Metrics)? {
            Some(addr) => {
                let handle = metrics::exporter().map_err(StartError::Metrics)?;
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Listen { addr, source })?;
                Some((listener, handle))
            }
            None => None,
        };
        let instance = instance_id(&config.server, listener.local_addr().unwrap_or(addr));
        db_lock.hold_instance(&instance).await?;
        let db = Db::open(
            &config.database.url,
            config.database.max_connections,
            db_lock,
        )
        .await?;
        let cookie_key = identity::cookie_key(&config.server, &config.database.url, &db).await?;
        // Several instances share a PostgreSQL database: what this one changes goes to the
        // others through the bus.
        let (outbox, outgoing) = match db.engine() {
            Engine::Postgres => {
                let (outbox, outgoing) = Outbox::new();
                (Some(outbox), Some(outgoing))
            }
            Engine::Sqlite => (None, None),
        };
        let hub = Hub::with_outbox(outbox);
        let limits = Arc::new(Limits::new(config.limits.clone()));
        let jobs = Jobs::start(
            db.clone(),
            hub.clone(),
            Arc::clone(&pool),
            Arc::clone(&config),
            Arc::clone(&limits),
            &instance,
        )
        .await?;
        let state = AppState {
            leptos: leptos_options(listener.local_addr().unwrap_or(addr)),
            limits,
            config,
            db,
            hub,
            jobs,
            pool,
            cookie_key,
            instance: instance.as_str().into(),
            shutdown: CancellationToken::new(),
        };
        tokio::spawn({
            let (hub, stop) = (state.hub.clone(), state.shutdown.clone());
            let every = state.config.wall_batch_interval();
            crate::supervise::keep_running(
                "the wall's pump",
                crate::supervise::RESTART_AFTER,
                move |again| {
                    let (hub, stop) = (hub.clone(), stop.clone());
                    async move { hub.pump_wall(every, WALL_KEEP_ALIVE, stop, again).await }
                },
            )
        });
        let mut bus_sender = None;
        if let (Some(outgoing), Some(pg)) = (outgoing, state.db.postgres()) {
            bus_sender = Some(tokio::spawn(bus::send(
                pg.clone(),
                instance,
                outgoing,
                state.shutdown.clone(),
            )));
            tokio::spawn(bus::listen(state.clone(), pg.clone()));
        }
        Ok(Self {
            listener,
            state,
            metrics,
            bus_sender,
        })
    }

    /// This instance's name (`server.instance_id`, or host name and port).
    pub fn instance(&self) -> &str {
        &self.state.instance
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The database engine the wall runs on.
    pub fn engine(&self) -> Engine {
        self.state.db.engine()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.addr)
    }

    /// Serves until `signal` resolves; then stops taking jobs, lets running generations finish
    /// within the grace period (requeueing the rest), closes the SSE streams and returns.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Server {
            listener,
            state,
            metrics,
            bus_sender,
        } = self;
        if let Some((listener, handle)) = metrics {
            tokio::spawn(metrics::serve(
                listener,
                handle,
                state.db.clone(),
                state.instance.to_string(),
                state.shutdown.clone(),
            ));
        }
        let server = &state.config.server;
        let options = EdgeOptions {
            max_connections: edge::connection_cap(server.max_connections),
            timeouts: Timeouts {
                header_read: Duration::from_secs(server.header_read_timeout_secs),
                idle: Duration::from_secs(server.idle_timeout_secs),
            },
        };
        let grace = Duration::from_secs(server.shutdown_grace_secs);
        let stopping = state.clone();
        let result = edge::serve(
            listener,
            routes::router(state.clone()),
            routes::at_capacity(state.clone(), options.max_connections),
            options,
            async move {
                signal.await;
                // Connections still open then are closed by this deadline.
                let deadline = tokio::time::Instant::now() + grace;
                tracing::info!(?grace, "shutting down: finishing running generations");
                stopping.jobs.shutdown(grace).await;
                stopping.shutdown.cancel();
                deadline
            },
        )
        .await;
        if let Some(sender) = bus_sender {
            let _ = tokio::time::timeout(LAST_NOTES, sender).await;
        }
        state.db.close().await;
        tracing::info!("stopped");
        result
    }
}

fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    // cargo-leptos passes its settings in LEPTOS_* variables (for `cargo leptos watch`'s live
    // reload); a copied binary has none and uses the names the build gave the site's files.
    let mut options = match std::env::var_os("LEPTOS_OUTPUT_NAME") {
        Some(_) => leptos::config::get_configuration(None)
            .map(|c| c.leptos_options)
            .ok(),
        None => None,
    }
    .unwrap_or_else(|| LeptosOptions::builder().output_name("aiwall").build());
    options.site_addr = addr;
    options
}

/// `server.instance_id`, or this host's name and the port the wall listens on: unique on a
/// machine, and the same after a restart.
pub fn instance_id(server: &ServerConfig, addr: SocketAddr) -> String {
    let configured = server.instance_id.trim();
    if !configured.is_empty() {
        return configured.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "aiwall".into());
    format!("{host}:{}", addr.port())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// The model servers of the configuration, with a client each.
fn pool(config: &Config) -> Result<Pool, StartError> {
    let options = ClientOptions {
        stall_timeout: Duration::from_secs(config.generation.stall_timeout_secs),
        deadline: Duration::from_secs(config.generation.deadline_secs),
        ..ClientOptions::default()
    };
    let mut servers = Vec::new();
    for b in config.backend_list() {
        let bad = |e: crate::backend::BackendError| StartError::Backend(format!("{}: {e}", b.name));
        let key = b
            .api_key()
            .map_err(StartError::Backend)?
            .map(|key| key.expose().to_string());
        let backend = match b.kind {
            BackendKind::Ollama => Backend::Ollama(
                OllamaClient::with_api_key(&b.url, options.clone(), key).map_err(bad)?,
            ),
            BackendKind::OpenAi => {
                Backend::OpenAi(OpenAiClient::new(&b.url, options.clone(), key).map_err(bad)?)
            }
        };
        tracing::info!(backend = %b.name, kind = ?b.kind, url = backend.url(), concurrency = b.concurrency, "model server");
        let concurrency = u32::try_from(b.concurrency).unwrap_or(u32::MAX);
        servers.push((b.name, backend, concurrency, b.models));
    }
    Ok(Pool::new(servers))
}
