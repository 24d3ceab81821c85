//! The `vkae` command line (the binary lives in the site crate and calls [`main`]). Usage mistakes exit 2
//! (clap's own exit status for them), failures 1.

use crate::auth::{self, TokenKind};
use crate::db::Db;
use crate::error::ApiError;
use crate::routes::SiteRoutes;
use crate::settings::{PublicOrigin, Settings};
use crate::startup::Application;
use crate::state::AppState;
use crate::store::{self, Actor};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

/// vkae: VKAE's evidence store, public API and site server.
#[derive(Debug, Parser)]
#[command(
    name = "vkae",
    arg_required_else_help = true,
    after_help = "Every command that opens the store takes --database DB (default: $VKAE_DATABASE_URL, else \
./data/vkae.db). serve: --bind (default $VKAE_BIND, else 127.0.0.1:8080), --content (default $VKAE_CONTENT_DIR, \
else ./content when present, else the content built in), --public-origin (default $VKAE_PUBLIC_ORIGIN, else \
http://BIND), --trust-forwarded-for (default $VKAE_TRUST_FORWARDED_FOR, else false); at start it ingests the signed records of <content>/evidence/ and applies its promotions.toml \
(--no-content-evidence: neither).\nLevels: declared-baseline, vkae-path, optimized-showcase, preview-smoke."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// SQLite database: a path, sqlite:PATH or sqlite://PATH.
    #[arg(long, value_name = "DB")]
    database: Option<String>,
}

#[derive(Debug, Args)]
struct ContentArgs {
    /// Content folder (catalog, GPUs, service paths, profiles, sizing).
    #[arg(long, value_name = "DIR")]
    content: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the JSON API (and the site's pages) until Ctrl-C or SIGTERM.
    Serve {
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        content: ContentArgs,
        #[arg(long, value_name = "URL")]
        public_origin: Option<String>,
        /// Do not ingest content/evidence/ nor apply its promotions.toml at start.
        #[arg(long)]
        no_content_evidence: bool,
        /// Take the client's address from the first X-Forwarded-For entry (only behind a proxy that sets it);
        /// default $VKAE_TRUST_FORWARDED_FOR (true/false), else false.
        #[arg(long)]
        trust_forwarded_for: bool,
    },
    /// Apply the database migrations.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Operators (password: first line of standard input, at least 12 characters).
    Operator {
        #[command(subcommand)]
        action: OperatorAction,
    },
    /// Tokens: an ingest token (default) or an operator bearer token for scripts; only the hash is stored.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Lane keys: the public keys whose signatures ingest accepts.
    LaneKey {
        #[command(subcommand)]
        action: LaneKeyAction,
    },
    /// Write a new Ed25519 secret key to FILE (mode 0600) and its public key to FILE.pub; print the public key.
    Keygen {
        #[arg(value_name = "SECRET_KEY_FILE")]
        file: PathBuf,
    },
    /// Ingest signed run records (the same checks as POST /api/internal/runs).
    Ingest {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        content: ContentArgs,
    },
    /// Offline: does the signed record verify under that lane public key?
    Verify {
        #[arg(value_name = "RECORD_FILE")]
        record: PathBuf,
        #[arg(value_name = "PUBLIC_KEY_BASE64")]
        public_key: String,
    },
    /// Promote a run to a public claim.
    Promote {
        #[command(flatten)]
        decision: DecisionArgs,
        #[arg(long, value_name = "SLUG")]
        level: String,
    },
    /// Withdraw a public claim.
    Retract {
        #[command(flatten)]
        decision: DecisionArgs,
    },
    /// A consistent copy of the database (VACUUM INTO).
    Backup {
        path: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// What a promotion and a retraction both take.
#[derive(Debug, Args)]
struct DecisionArgs {
    run_id: String,
    #[arg(long, value_name = "NAME")]
    operator: String,
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    content: ContentArgs,
}

#[derive(Debug, Subcommand)]
enum OperatorAction {
    Add {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    Issue {
        /// Issue an operator bearer token for this operator (default: an ingest token).
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        #[arg(long, value_name = "TEXT", default_value = "cli")]
        label: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum LaneKeyAction {
    Add {
        name: String,
        #[arg(value_name = "PUBLIC_KEY_BASE64")]
        public_key: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A command-line mistake (exit status 2) or a failure (exit status 1).
#[derive(Debug)]
enum Failure {
    Usage(String),
    Failed(String),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Failed(e.to_string())
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Failed(e)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Settings from the flags, then the environment, then [`Settings::local`].
fn settings(
    store: &StoreArgs,
    content: Option<&ContentArgs>,
    bind: Option<&str>,
    public_origin: Option<&str>,
) -> Result<Settings, Failure> {
    let mut s = Settings::local();
    if let Some(bind) = bind.map(str::to_string).or_else(|| env("VKAE_BIND")) {
        s.bind = resolve(&bind)?;
    }
    if let Some(db) = store.database.clone().or_else(|| env("VKAE_DATABASE_URL")) {
        s.database = db;
    }
    if let Some(dir) = content
        .and_then(|c| c.content.clone())
        .or_else(|| env("VKAE_CONTENT_DIR").map(PathBuf::from))
    {
        s.content_dir = Some(dir);
    }
    s.public_origin = match public_origin
        .map(str::to_string)
        .or_else(|| env("VKAE_PUBLIC_ORIGIN"))
    {
        Some(origin) => PublicOrigin::parse(&origin).map_err(Failure::Usage)?,
        None => PublicOrigin::for_bind(s.bind),
    };
    Ok(s)
}

/// An on/off environment setting: true/1/yes or false/0/no (any case); anything else is a usage error.
fn parse_switch(name: &str, value: &str) -> Result<bool, Failure> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Failure::Usage(format!(
            "{name}={value:?}: use true or false"
        ))),
    }
}

/// `HOST:PORT` as the address to listen on (a host name resolves to its first address).
fn resolve(bind: &str) -> Result<SocketAddr, Failure> {
    bind.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Failure::Usage(format!(
                "--bind {bind:?} is not an address such as 127.0.0.1:8080"
            ))
        })
}

/// Runs the `vkae` command line; `site` adds the site's routes to `serve`.
pub fn main(site: Option<SiteRoutes>) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vkae: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, site)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("vkae: {m}\n\nRun `vkae --help` for the commands and their flags.");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("vkae: {m}");
            ExitCode::FAILURE
        }
    }
}

async fn open_db(store: &StoreArgs) -> Result<Db, Failure> {
    let db = Db::open(&settings(store, None, None, None)?.database).await?;
    db.migrate().await?;
    Ok(db)
}

async fn operator_named(db: &Db, name: &str) -> Result<auth::Operator, Failure> {
    auth::find_operator(&db.writer, name).await?.ok_or_else(|| {
        Failure::Failed(format!(
            "no operator named {name:?} (vkae operator add NAME)"
        ))
    })
}

async fn run(command: Command, site: Option<SiteRoutes>) -> Result<(), Failure> {
    match command {
        Command::Serve {
            bind,
            store,
            content,
            public_origin,
            no_content_evidence,
            trust_forwarded_for,
        } => {
            let mut settings = settings(
                &store,
                Some(&content),
                bind.as_deref(),
                public_origin.as_deref(),
            )?;
            settings.content_evidence = !no_content_evidence;
            settings.trust_forwarded_for = trust_forwarded_for
                || match env("VKAE_TRUST_FORWARDED_FOR") {
                    Some(value) => parse_switch("VKAE_TRUST_FORWARDED_FOR", &value)?,
                    None => false,
                };
            let app = Application::build_with_site(settings, site).await?;
            println!("vkae: listening on http://{}", app.addr());
            let _ = std::io::stdout().flush();
            app.run_until_stopped()
                .await
                .map_err(|e| format!("server failed: {e}"))?;
        }
        Command::Migrate { store } => {
            let db = open_db(&store).await?;
            println!("migrations applied");
            db.close().await;
        }
        Command::Operator {
            action: OperatorAction::Add { name, store },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            let password = password.trim_end_matches(['\n', '\r']);
            let db = open_db(&store).await?;
            let op = auth::add_operator(&db.writer, &name, password).await?;
            println!("operator {} added", op.name);
            db.close().await;
        }
        Command::Token {
            action:
                TokenAction::Issue {
                    operator,
                    label,
                    store,
                },
        } => {
            let db = open_db(&store).await?;
            let token = match operator {
                Some(name) => {
                    let op = operator_named(&db, &name).await?;
                    auth::issue_token(&db.writer, TokenKind::Operator, Some(&op), &label).await?
                }
                None => auth::issue_token(&db.writer, TokenKind::Ingest, None, &label).await?,
            };
            println!("{token}");
            db.close().await;
        }
        Command::LaneKey {
            action:
                LaneKeyAction::Add {
                    name,
                    public_key,
                    store,
                },
        } => {
            let db = open_db(&store).await?;
            store::add_lane_key(&db, &Actor::Cli, &name, &public_key).await?;
            println!("lane key {name} registered");
            db.close().await;
        }
        Command::Keygen { file } => {
            let keys = vkae_record::write_keypair(&file).map_err(|e| {
                format!(
                    "cannot create {} (it must not exist yet): {e}",
                    file.display()
                )
            })?;
            eprintln!("{}", keys.instructions(&file));
            println!("{}", keys.public_key);
        }
        Command::Verify { record, public_key } => {
            // No database: a claim's record (GET /api/v1/claims/{run_id}/record) and its lane key
            // (`provenance.lane_public_key` of the claim) are all it takes.
            let file = record.display().to_string();
            let bytes = std::fs::read(&record).map_err(|e| format!("cannot read {file}: {e}"))?;
            let key = vkae_record::decode_verifying_key(&public_key)
                .map_err(|e| Failure::Usage(format!("the public key: {e}")))?;
            let record = vkae_record::RunRecord::parse(&bytes)
                .map_err(|e| format!("{file} is not a vkae.run.v1 record: {e}"))?;
            record.verify(&key).map_err(|e| format!("{file}: {e}"))?;
            println!(
                "{file}: run {} verifies under lane key {:?}; canonical record sha256 {}",
                record.run_id,
                record.lane_key,
                crate::auth::sha256_hex(&record.canonical_bytes())
            );
        }
        Command::Ingest {
            files,
            store,
            content,
        } => {
            let state = AppState::open(settings(&store, Some(&content), None, None)?).await?;
            let mut failed = 0;
            for path in &files {
                let file = path.display();
                let bytes = std::fs::read(path).map_err(|e| format!("cannot read {file}: {e}"))?;
                match crate::service::ingest(&state, &Actor::Cli, &bytes).await {
                    Ok(o) => {
                        let lanes: Vec<String> = o
                            .lanes
                            .iter()
                            .map(|v| {
                                format!(
                                    "{}={}",
                                    v.lane.as_str(),
                                    if v.passed { "pass" } else { "fail" }
                                )
                            })
                            .collect();
                        println!(
                            "{file}: {} run {} (id {}) {}",
                            if o.created {
                                "stored"
                            } else {
                                "already stored"
                            },
                            o.run_id,
                            o.id,
                            lanes.join(" ")
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{file}: refused: {e}");
                    }
                }
            }
            state.db.close().await;
            if failed > 0 {
                return Err(Failure::Failed(format!(
                    "{failed} of {} records refused",
                    files.len()
                )));
            }
        }
        Command::Promote { decision, level } => {
            decide(&decision, |state, op, d| async move {
                crate::service::promote(&state, &op, &d.run_id, &level, &d.reason).await
            })
            .await?;
        }
        Command::Retract { decision } => {
            decide(&decision, |state, op, d| async move {
                crate::service::retract(&state, &op, &d.run_id, &d.reason).await
            })
            .await?;
        }
        Command::Backup { path, store } => {
            let db = open_db(&store).await?;
            db.backup(&path).await?;
            db.close().await;
            println!("backup written to {}", path.display());
        }
    }
    Ok(())
}

/// Runs a promotion or retraction as the named operator and prints the decision (a refusal with its details).
async fn decide<'a, F, Fut>(args: &'a DecisionArgs, act: F) -> Result<(), Failure>
where
    F: FnOnce(AppState, auth::Operator, &'a DecisionArgs) -> Fut,
    Fut: std::future::Future<Output = crate::error::ApiResult<store::Decision>>,
{
    let state = AppState::open(settings(&args.store, Some(&args.content), None, None)?).await?;
    let op = operator_named(&state.db, &args.operator).await?;
    let decision = act(state.clone(), op, args).await;
    state.db.close().await;
    match decision {
        Ok(d) => {
            println!("{} {} by {} at {}", d.run_id, d.status, d.by, d.at);
            Ok(())
        }
        Err(e) => {
            let details = e
                .details
                .as_ref()
                .map(|d| format!("\n{d:#}"))
                .unwrap_or_default();
            Err(Failure::Failed(format!("{e}{details}")))
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_takes_trust_forwarded_for_as_a_flag_and_a_switch() {
        let cli = Cli::try_parse_from(["vkae", "serve", "--trust-forwarded-for"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve {
                trust_forwarded_for: true,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["vkae", "serve"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve {
                trust_forwarded_for: false,
                ..
            }
        ));
        assert!(parse_switch("X", "TRUE").unwrap());
        assert!(parse_switch("X", "1").unwrap());
        assert!(!parse_switch("X", "no").unwrap());
        assert!(matches!(parse_switch("X", "maybe"), Err(Failure::Usage(_))));
    }
}
