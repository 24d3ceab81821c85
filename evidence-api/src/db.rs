//! SQLite: one writer connection (writes are serialised in-process, so no transaction ever waits on another of
//! ours) and a small pool of readers. WAL, `synchronous=FULL`, foreign keys on, a busy timeout for other
//! processes (the CLI) writing at the same time.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Both pools over one database file.
#[derive(Clone, Debug)]
pub struct Db {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

/// Normalises `sqlite:PATH`, `sqlite://PATH` or a bare path into connect options, creating the parent folder.
pub fn connect_options(database: &str) -> Result<SqliteConnectOptions, String> {
    Ok(base_options(database)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full))
}

/// Options shared by writer and readers: the file, foreign keys, busy timeout.
fn base_options(database: &str) -> Result<SqliteConnectOptions, String> {
    let path = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
        .unwrap_or(database);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(format!(
            "database {database:?}: a file path is required (the store must survive restarts)"
        ));
    }
    let file = PathBuf::from(path);
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| format!("database {database:?}: {e}"))?
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    Ok(options)
}

impl Db {
    /// Opens (creating if missing) the database file.
    pub async fn open(database: &str) -> Result<Db, String> {
        let options = connect_options(database)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| format!("cannot open database {database:?}: {e}"))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base_options(database)?.read_only(true))
            .await
            .map_err(|e| format!("cannot open database {database:?} for reading: {e}"))?;
        Ok(Db { writer, reader })
    }

    /// Applies the embedded migrations (`migrations/`).
    pub async fn migrate(&self) -> Result<(), String> {
        sqlx::migrate!("../migrations")
            .run(&self.writer)
            .await
            .map_err(|e| format!("migration failed: {e}"))
    }

    /// `PRAGMA integrity_check`: "ok" on a healthy file.
    pub async fn integrity_check(&self) -> Result<String, sqlx::Error> {
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.writer)
            .await
    }

    /// Writes a consistent copy of the database to `path` (VACUUM INTO). Refuses an existing file.
    pub async fn backup(&self, path: &std::path::Path) -> Result<(), String> {
        if path.exists() {
            return Err(format!(
                "{} exists; backup never overwrites",
                path.display()
            ));
        }
        let target = path.to_str().ok_or("backup path must be UTF-8")?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.writer)
            .await
            .map_err(|e| format!("backup to {} failed: {e}", path.display()))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// The current time as RFC 3339 UTC (whole seconds).
pub fn now_rfc3339() -> String {
    vkae_record::Timestamp::now().to_rfc3339()
}

/// The current time in unix seconds.
pub fn now_unix() -> i64 {
    vkae_record::Timestamp::now().unix_seconds
}
