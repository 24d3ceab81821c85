//! The `vkae` command line (the binary lives in the site crate and calls [`main`]).

use crate::app::{AppState, Application, Settings, SiteRoutes};
use crate::auth::{self, TokenKind};
use crate::db::Db;
use crate::error::ApiError;
use crate::store::{self, Actor};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
vkae: VKAE's evidence store, public API and site server

USAGE:
  vkae serve [--bind ADDR] [--database DB] [--content DIR] [--public-origin URL]
  vkae migrate [--database DB]
  vkae operator add NAME                   (password: first line of standard input, >= 12 characters)
  vkae token issue [--label TEXT]          (prints a new ingest token; only its hash is stored)
  vkae token issue --operator NAME [--label TEXT]   (an operator bearer token, for scripts)
  vkae lane-key add NAME PUBLIC_KEY_BASE64
  vkae keygen SECRET_KEY_FILE              (writes a new Ed25519 secret key; prints its public key)
  vkae ingest FILE...                      (same checks as POST /api/internal/runs)
  vkae verify RECORD_FILE PUBLIC_KEY_BASE64   (offline: does the signed record verify under that key?)
  vkae promote RUN_ID --operator NAME --level SLUG --reason TEXT
  vkae retract RUN_ID --operator NAME --reason TEXT
  vkae backup PATH                         (a consistent copy of the database, VACUUM INTO)

Every command takes --database DB (default: $VKAE_DATABASE_URL, else ./data/vkae.db).
serve: --bind (default $VKAE_BIND, else 127.0.0.1:8080), --content (default $VKAE_CONTENT_DIR, else ./content
when present, else the content built in), --public-origin (default $VKAE_PUBLIC_ORIGIN, else http://BIND).
Levels: declared-baseline, vkae-path, optimized-showcase, preview-smoke.";

/// A command-line mistake (exit status 2) or a failure (exit status 1).
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

struct Args {
    positional: Vec<String>,
    flags: HashMap<String, String>,
}

const FLAGS: &[&str] = &[
    "bind",
    "database",
    "content",
    "public-origin",
    "operator",
    "label",
    "level",
    "reason",
];

fn parse_args(raw: Vec<String>) -> Result<Args, Failure> {
    let mut positional = Vec::new();
    let mut flags = HashMap::new();
    let mut it = raw.into_iter();
    while let Some(arg) = it.next() {
        if let Some(flag) = arg.strip_prefix("--") {
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it
                        .next()
                        .ok_or_else(|| Failure::Usage(format!("--{flag} needs a value")))?;
                    (flag.to_string(), v)
                }
            };
            if !FLAGS.contains(&name.as_str()) {
                return Err(Failure::Usage(format!("unknown flag --{name}")));
            }
            if flags.insert(name.clone(), value).is_some() {
                return Err(Failure::Usage(format!("--{name} given twice")));
            }
        } else {
            positional.push(arg);
        }
    }
    Ok(Args { positional, flags })
}

impl Args {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }
    fn required(&self, name: &str) -> Result<&str, Failure> {
        self.flag(name)
            .ok_or_else(|| Failure::Usage(format!("--{name} is required")))
    }
    fn only(&self, allowed: &[&str]) -> Result<(), Failure> {
        match self.flags.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Failure::Usage(format!(
                "--{k} does not apply to this command"
            ))),
            None => Ok(()),
        }
    }
    fn positionals(&self, n: usize, what: &str) -> Result<&[String], Failure> {
        if self.positional.len() == n {
            Ok(&self.positional)
        } else {
            Err(Failure::Usage(format!("expected {what}")))
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn settings(args: &Args) -> Settings {
    let mut s = Settings::local();
    if let Some(bind) = args
        .flag("bind")
        .map(str::to_string)
        .or_else(|| env("VKAE_BIND"))
    {
        s.bind = bind;
    }
    if let Some(db) = args
        .flag("database")
        .map(str::to_string)
        .or_else(|| env("VKAE_DATABASE_URL"))
    {
        s.database = db;
    }
    if let Some(dir) = args
        .flag("content")
        .map(str::to_string)
        .or_else(|| env("VKAE_CONTENT_DIR"))
    {
        s.content_dir = Some(PathBuf::from(dir));
    }
    s.public_origin = args
        .flag("public-origin")
        .map(str::to_string)
        .or_else(|| env("VKAE_PUBLIC_ORIGIN"))
        .unwrap_or_else(|| format!("http://{}", s.bind));
    s
}

/// Runs the `vkae` command line; `site` adds the site's routes to `serve`.
pub fn main(site: Option<SiteRoutes>) -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.is_empty() || matches!(raw[0].as_str(), "help" | "--help" | "-h") {
        println!("{USAGE}");
        return if raw.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
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
    match runtime.block_on(run(raw, site)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("vkae: {m}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("vkae: {m}");
            ExitCode::FAILURE
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

async fn open_db(args: &Args) -> Result<Db, Failure> {
    let db = Db::open(&settings(args).database).await?;
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

async fn run(raw: Vec<String>, site: Option<SiteRoutes>) -> Result<(), Failure> {
    let command = raw[0].clone();
    let args = parse_args(raw[1..].to_vec())?;
    match command.as_str() {
        "serve" => {
            args.only(&["bind", "database", "content", "public-origin"])?;
            args.positionals(0, "no arguments")?;
            let app = Application::build_with_site(settings(&args), site).await?;
            println!("vkae: listening on http://{}", app.addr());
            let _ = std::io::stdout().flush();
            app.run_until_stopped()
                .await
                .map_err(|e| format!("server failed: {e}"))?;
        }
        "migrate" => {
            args.only(&["database"])?;
            args.positionals(0, "no arguments")?;
            let db = open_db(&args).await?;
            println!("migrations applied");
            db.close().await;
        }
        "operator" => {
            args.only(&["database"])?;
            let p = args.positionals(2, "operator add NAME")?;
            if p[0] != "add" {
                return Err(Failure::Usage(format!(
                    "unknown operator subcommand {:?}",
                    p[0]
                )));
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            let password = password.trim_end_matches(['\n', '\r']);
            let db = open_db(&args).await?;
            let op = auth::add_operator(&db.writer, &p[1], password).await?;
            println!("operator {} added", op.name);
            db.close().await;
        }
        "token" => {
            args.only(&["database", "operator", "label"])?;
            let p = args.positionals(1, "token issue")?;
            if p[0] != "issue" {
                return Err(Failure::Usage(format!(
                    "unknown token subcommand {:?}",
                    p[0]
                )));
            }
            let db = open_db(&args).await?;
            let label = args.flag("label").unwrap_or("cli");
            let token = match args.flag("operator") {
                Some(name) => {
                    let op = operator_named(&db, name).await?;
                    auth::issue_token(&db.writer, TokenKind::Operator, Some(&op), label).await?
                }
                None => auth::issue_token(&db.writer, TokenKind::Ingest, None, label).await?,
            };
            println!("{token}");
            db.close().await;
        }
        "lane-key" => {
            args.only(&["database"])?;
            let p = args.positionals(3, "lane-key add NAME PUBLIC_KEY_BASE64")?;
            if p[0] != "add" {
                return Err(Failure::Usage(format!(
                    "unknown lane-key subcommand {:?}",
                    p[0]
                )));
            }
            let db = open_db(&args).await?;
            store::add_lane_key(&db, &Actor::Cli, &p[1], &p[2]).await?;
            println!("lane key {} registered", p[1]);
            db.close().await;
        }
        "keygen" => {
            args.only(&[])?;
            let p = args.positionals(1, "keygen SECRET_KEY_FILE")?;
            let (secret, public) = vkae_record::keygen();
            vkae_record::write_signing_key_file(std::path::Path::new(&p[0]), &secret)
                .map_err(|e| format!("cannot write {}: {e}", p[0]))?;
            println!("{}", vkae_record::encode_verifying_key(&public));
        }
        "verify" => {
            // No database: a claim's record (GET /api/v1/claims/{run_id}/record) and its lane key
            // (`provenance.lane_public_key` of the claim) are all it takes.
            args.only(&[])?;
            let p = args.positionals(2, "verify RECORD_FILE PUBLIC_KEY_BASE64")?;
            let bytes = std::fs::read(&p[0]).map_err(|e| format!("cannot read {}: {e}", p[0]))?;
            let key = vkae_record::decode_verifying_key(&p[1])
                .map_err(|e| Failure::Usage(format!("the public key: {e}")))?;
            let record = vkae_record::RunRecord::parse(&bytes)
                .map_err(|e| format!("{} is not a vkae.run.v1 record: {e}", p[0]))?;
            record.verify(&key).map_err(|e| format!("{}: {e}", p[0]))?;
            println!(
                "{}: run {} verifies under lane key {:?}; canonical record sha256 {}",
                p[0],
                record.run_id,
                record.lane_key,
                crate::auth::sha256_hex(&record.canonical_bytes())
            );
        }
        "ingest" => {
            args.only(&["database", "content"])?;
            if args.positional.is_empty() {
                return Err(Failure::Usage("expected ingest FILE...".into()));
            }
            let state = AppState::open(settings(&args)).await?;
            let mut failed = 0;
            for file in &args.positional {
                let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
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
                    args.positional.len()
                )));
            }
        }
        "promote" | "retract" => {
            let p = args.positionals(1, &format!("{command} RUN_ID"))?;
            let name = args.required("operator")?;
            let reason = args.required("reason")?;
            if command == "promote" {
                args.only(&["database", "content", "operator", "level", "reason"])?;
            } else {
                args.only(&["database", "content", "operator", "reason"])?;
            }
            let state = AppState::open(settings(&args)).await?;
            let op = operator_named(&state.db, name).await?;
            let decision = if command == "promote" {
                crate::service::promote(&state, &op, &p[0], args.required("level")?, reason).await
            } else {
                crate::service::retract(&state, &op, &p[0], reason).await
            };
            state.db.close().await;
            match decision {
                Ok(d) => println!("{} {} by {} at {}", d.run_id, d.status, d.by, d.at),
                Err(e) => {
                    let details = e
                        .details
                        .as_ref()
                        .map(|d| format!("\n{d:#}"))
                        .unwrap_or_default();
                    return Err(Failure::Failed(format!("{e}{details}")));
                }
            }
        }
        "backup" => {
            args.only(&["database"])?;
            let p = args.positionals(1, "backup PATH")?;
            let db = open_db(&args).await?;
            db.backup(std::path::Path::new(&p[0])).await?;
            db.close().await;
            println!("backup written to {}", p[0]);
        }
        other => return Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
    Ok(())
}
