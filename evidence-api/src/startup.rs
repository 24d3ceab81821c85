//! [`Application`]: the server built from settings, bound before it runs (so tests can start it on port 0 and
//! read the port), served until a shutdown signal, then drained.

use crate::routes::SiteRoutes;
use crate::settings::Settings;
use crate::state::AppState;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

/// The server, bound and ready to run.
pub struct Application {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Opens the store, loads content, builds the router and binds the listener.
    pub async fn build(settings: Settings) -> Result<Application, String> {
        Self::build_with_site(settings, None).await
    }

    /// As [`Application::build`], with the site's routes merged in.
    pub async fn build_with_site(
        settings: Settings,
        site: Option<SiteRoutes>,
    ) -> Result<Application, String> {
        let bind = settings.bind;
        let state = AppState::open(settings).await?;
        apply_content_evidence(&state).await?;
        let router = crate::routes::router(state.clone(), site);
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read bound address: {e}"))?;
        Ok(Application {
            listener,
            router,
            addr,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and closes the database.
    ///
    /// Each connection is HTTP/1.1 with a header-read timeout (a client that never finishes its request head is
    /// dropped), and at most `max_connections` are served at once: beyond that a new connection is closed as
    /// soon as it is accepted, so slow clients cannot use up the process's file descriptors.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let settings = &self.state.settings;
        let max_connections = settings.max_connections.max(1);
        let slots = Arc::new(Semaphore::new(max_connections));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout);
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let (stream, remote) = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: wait a moment, keep serving.
                        tracing::warn!(%e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%remote, max_connections, "connection cap reached; closing a new connection");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let service = TowerToHyperService::new(router.map_request(
                move |mut request: axum::extract::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request
                },
            ));
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let _slot = slot;
                tokio::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%e, %remote, "connection ended with an error");
                        }
                    }
                    _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.as_mut().await;
                    }
                }
            });
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        // Every connection holds one slot: all slots back means every connection has drained.
        let _ = slots.acquire_many(max_connections as u32).await;
        self.state.db.close().await;
        Ok(())
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Ingests the records and applies the promotions of `<content>/evidence/` when the settings ask for it and the
/// folder exists, and keeps the report in the state.
async fn apply_content_evidence(state: &AppState) -> Result<(), String> {
    let Some(dir) = state
        .settings
        .content_dir
        .as_ref()
        .map(|d| d.join("evidence"))
    else {
        return Ok(());
    };
    if !state.settings.content_evidence || !dir.is_dir() {
        return Ok(());
    }
    let report = crate::content_evidence::apply(
        &state.db,
        &state.content,
        &dir,
        state.settings.max_record_bytes,
    )
    .await?;
    let _ = state.content_evidence.set(report);
    Ok(())
}

async fn shutdown_signal() {
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
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
