//! [`Application`]: the server built from settings, bound before it runs (so tests can start it on port 0 and
//! read the port), served until a shutdown signal, then drained.

use crate::routes::SiteRoutes;
use crate::settings::Settings;
use crate::state::AppState;
use std::net::SocketAddr;

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
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        self.state.db.close().await;
        result
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Ingests the records and applies the promotions of `<content>/evidence/` when the settings ask for it and the
/// folder exists, and keeps the report in the state.
async fn apply_content_evidence(state: &AppState) -> Result<(), String> {
    let Some(dir) = state.settings.content_dir.as_ref().map(|d| d.join("evidence")) else {
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
