//! Typed settings, the shared state, and [`Application`]: the server built from settings, bound before it runs
//! (so tests can start it on port 0 and read the port).

use crate::content::Content;
use crate::db::Db;
use crate::preview::RateLimiter;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default Content-Security-Policy: same-origin everything; `'wasm-unsafe-eval'` lets Leptos instantiate its
/// WebAssembly bundle. Pages that need inline scripts must set their own CSP (with a nonce): this one is applied
/// only when a response has none.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub bind: String,
    /// SQLite database: a path, `sqlite:PATH` or `sqlite://PATH`.
    pub database: String,
    /// Content folder; `None`: the content compiled into the binary.
    pub content_dir: Option<PathBuf>,
    /// The site's origin as browsers see it (`scheme://host[:port]`): the Origin that state-changing browser
    /// requests must carry.
    pub public_origin: String,
    /// A session ends after this many seconds without a request.
    pub session_idle_seconds: i64,
    /// Largest request body accepted by any route.
    pub max_body_bytes: usize,
    /// Largest run record accepted by ingest.
    pub max_record_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout: Duration,
    /// Preview requests per client per window.
    pub preview_rate_limit: usize,
    pub preview_rate_window: Duration,
    /// Use the first `X-Forwarded-For` address as the client (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Content-Security-Policy for responses that set none.
    pub csp: String,
}

impl Settings {
    /// Defaults for a local server: `127.0.0.1:8080`, `./data/vkae.db`, content from `./content` when present.
    pub fn local() -> Settings {
        let content = PathBuf::from("content");
        Settings {
            bind: "127.0.0.1:8080".into(),
            database: "data/vkae.db".into(),
            content_dir: content.join("catalog.toml").exists().then_some(content),
            public_origin: "http://127.0.0.1:8080".into(),
            session_idle_seconds: 2 * 3600,
            max_body_bytes: 1024 * 1024,
            max_record_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(15),
            preview_rate_limit: 5,
            preview_rate_window: Duration::from_secs(600),
            trust_forwarded_for: false,
            csp: DEFAULT_CSP.into(),
        }
    }

    /// Settings for a test: port 0 on loopback, the given database file, the repository's content folder.
    pub fn for_test(database: impl Into<String>) -> Settings {
        Settings {
            bind: "127.0.0.1:0".into(),
            database: database.into(),
            content_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../content")),
            ..Settings::local()
        }
    }

    pub fn load_content(&self) -> Result<Content, String> {
        match &self.content_dir {
            Some(dir) => Content::load(dir),
            None => Content::embedded(),
        }
        .map_err(|e| format!("content: {e}"))
    }
}

/// State shared by every request (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<StateInner>);

#[derive(Debug)]
pub struct StateInner {
    pub settings: Settings,
    pub content: Content,
    pub db: Db,
    pub preview_limiter: RateLimiter,
}

impl Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    /// Opens the database, applies migrations and loads content.
    pub async fn open(settings: Settings) -> Result<AppState, String> {
        let content = settings.load_content()?;
        let db = Db::open(&settings.database).await?;
        db.migrate().await?;
        let preview_limiter =
            RateLimiter::new(settings.preview_rate_limit, settings.preview_rate_window);
        Ok(AppState(Arc::new(StateInner {
            settings,
            content,
            db,
            preview_limiter,
        })))
    }
}

/// Routes the site adds beside the API (pages, server functions, assets); they share the API's middleware.
pub type SiteRoutes = Box<dyn FnOnce(AppState) -> axum::Router + Send>;

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
        let bind = settings.bind.clone();
        let state = AppState::open(settings).await?;
        let router = crate::http::router(state.clone(), site);
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
