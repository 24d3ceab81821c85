//! Typed settings: everything the server needs to start, each value parsed once (the CLI turns flags and
//! environment variables into these, refusing what does not parse).

use crate::content::Content;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default Content-Security-Policy: same-origin everything; `'wasm-unsafe-eval'` lets Leptos instantiate its
/// WebAssembly bundle. Pages that need inline scripts must set their own CSP (with a nonce): this one is applied
/// only when a response has none.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The site's origin as browsers see it: `http://` or `https://`, a host and an optional port, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin(String);

impl PublicOrigin {
    pub fn parse(value: &str) -> Result<PublicOrigin, String> {
        let rest = value
            .strip_prefix("http://")
            .or_else(|| value.strip_prefix("https://"))
            .ok_or_else(|| {
                format!("public origin {value:?} must start with http:// or https://")
            })?;
        let host_ok = !rest.is_empty()
            && rest.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if !host_ok {
            return Err(format!(
                "public origin {value:?} must be scheme://host[:port], without a path or a trailing slash"
            ));
        }
        Ok(PublicOrigin(value.to_string()))
    }

    /// The origin for a server reached directly at `bind`.
    pub fn for_bind(bind: SocketAddr) -> PublicOrigin {
        PublicOrigin(format!("http://{bind}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub bind: SocketAddr,
    /// SQLite database: a path, `sqlite:PATH` or `sqlite://PATH`.
    pub database: String,
    /// Content folder; `None`: the content compiled into the binary.
    pub content_dir: Option<PathBuf>,
    /// The Origin that state-changing browser requests must carry.
    pub public_origin: PublicOrigin,
    /// A session ends after this many seconds without a request.
    pub session_idle_seconds: i64,
    /// A session ends this many seconds after login, however active.
    pub session_absolute_seconds: i64,
    /// Largest request body accepted by any route.
    pub max_body_bytes: usize,
    /// Largest run record accepted by ingest.
    pub max_record_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout: Duration,
    /// A connection that has not sent a whole request head within this time is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Preview requests per client per window.
    pub preview_rate_limit: usize,
    pub preview_rate_window: Duration,
    /// Use the first `X-Forwarded-For` address as the client (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Content-Security-Policy for responses that set none.
    pub csp: String,
    /// At start, ingest the signed records of `<content>/evidence/` and apply its `promotions.toml`.
    pub content_evidence: bool,
    /// The instant claims' standing (stale or current) is judged at; None: the system clock.
    pub clock: Option<vkae_record::Timestamp>,
}

impl Settings {
    /// Defaults for a local server: `127.0.0.1:8080`, `./data/vkae.db`, content from `./content` when present.
    pub fn local() -> Settings {
        let content = PathBuf::from("content");
        let bind = SocketAddr::from(([127, 0, 0, 1], 8080));
        Settings {
            bind,
            database: "data/vkae.db".into(),
            content_dir: content.join("catalog.toml").exists().then_some(content),
            public_origin: PublicOrigin::for_bind(bind),
            session_idle_seconds: 2 * 3600,
            session_absolute_seconds: 12 * 3600,
            max_body_bytes: 1024 * 1024,
            max_record_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            preview_rate_limit: 5,
            preview_rate_window: Duration::from_secs(600),
            trust_forwarded_for: false,
            csp: DEFAULT_CSP.into(),
            content_evidence: true,
            clock: None,
        }
    }

    /// The current instant by this server's clock.
    pub fn now(&self) -> vkae_record::Timestamp {
        self.clock.unwrap_or_else(vkae_record::Timestamp::now)
    }

    /// Settings for a test: port 0 on loopback, the given database file, the repository's content folder.
    pub fn for_test(database: impl Into<String>) -> Settings {
        Settings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: database.into(),
            content_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../content")),
            // A test store starts empty, and judges standing at a fixed instant (2026-12-01T00:00:00Z).
            content_evidence: false,
            clock: Some(vkae_record::Timestamp {
                unix_seconds: 1_796_083_200,
                nanos: 0,
            }),
            ..Settings::local()
        }
    }

    /// The session lifetime these settings give.
    pub fn session_lifetime(&self) -> crate::auth::SessionLifetime {
        crate::auth::SessionLifetime {
            idle_seconds: self.session_idle_seconds,
            absolute_seconds: self.session_absolute_seconds,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_origins_are_scheme_host_and_port_only() {
        for good in [
            "http://127.0.0.1:8080",
            "https://vkae.example",
            "http://[::1]:80",
        ] {
            assert_eq!(PublicOrigin::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "127.0.0.1:8080",
            "http://",
            "https://vkae.example/",
            "http://a b",
            "ftp://x",
        ] {
            assert!(PublicOrigin::parse(bad).is_err(), "{bad}");
        }
    }
}
