//! The state every request shares: settings, content, the database pools, the preview rate limiter and the login
//! guard (bounded password hashing, failed-login back-off).

use crate::auth::LoginGuard;
use crate::content::Content;
use crate::content_evidence::ContentEvidenceReport;
use crate::db::Db;
use crate::preview::RateLimiter;
use crate::routes::cache::PublicCache;
use crate::settings::Settings;
use std::ops::Deref;
use std::sync::Arc;

/// State shared by every request (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<StateInner>);

#[derive(Debug)]
pub struct StateInner {
    pub settings: Settings,
    pub content: Content,
    pub db: Db,
    pub preview_limiter: RateLimiter,
    /// What applying `content/evidence/` at start did (set once by `serve`; unset when it did not run).
    pub content_evidence: std::sync::OnceLock<ContentEvidenceReport>,
    pub login_guard: LoginGuard,
    pub public_cache: PublicCache,
    pub page_cache: PublicCache,
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
            content_evidence: std::sync::OnceLock::new(),
            login_guard: LoginGuard::default(),
            public_cache: PublicCache::default(),
            page_cache: PublicCache::default(),
        })))
    }
}
