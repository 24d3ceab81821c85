//! Test harness: the real server on 127.0.0.1:0 with a fresh SQLite file, a real HTTP client, and signed
//! records made with vkae-record and a freshly generated key.
#![allow(dead_code)]

use reqwest::{Client, Method, Response};
use serde_json::{json, Value};
use std::path::PathBuf;
use vkae_evidence::auth::{self, Operator, TokenKind};
use vkae_evidence::store::{self, Actor};
use vkae_evidence::{AppState, Application, Settings};
use vkae_record::{RunRecord, SigningKey};

pub const LANE_KEY: &str = "lab-test";
pub const OPERATOR: &str = "ada";
pub const PASSWORD: &str = "correct horse battery";

/// A fresh temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!(
            "vkae-{tag}-{}-{}",
            std::process::id(),
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub base: String,
    pub origin: String,
    pub state: AppState,
    pub client: Client,
    pub key: SigningKey,
    pub ingest_token: String,
    pub operator_token: String,
    pub operator: Operator,
    pub _dir: TempDir,
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

/// Starts the server with adjusted settings, registers a lane key, an operator and tokens.
pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = TempDir::new("api");
    let mut settings = Settings::for_test(dir.0.join("store.db").to_str().unwrap());
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("server builds");
    let port = app.port();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let base = format!("http://127.0.0.1:{port}");
    // The configured origin is what a browser on this site sends.
    let origin = state.settings.public_origin.to_string();

    let (key, public) = vkae_record::keygen();
    store::add_lane_key(
        &state.db,
        &Actor::Cli,
        LANE_KEY,
        &vkae_record::encode_verifying_key(&public),
    )
    .await
    .unwrap();
    let operator = auth::add_operator(&state.db.writer, OPERATOR, PASSWORD)
        .await
        .unwrap();
    let ingest_token = auth::issue_token(&state.db.writer, TokenKind::Ingest, None, "test")
        .await
        .unwrap();
    let operator_token = auth::issue_token(
        &state.db.writer,
        TokenKind::Operator,
        Some(&operator),
        "test",
    )
    .await
    .unwrap();
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        base,
        origin,
        state,
        client,
        key,
        ingest_token,
        operator_token,
        operator,
        _dir: dir,
    }
}

/// The E4B profile's declared baseline and its context reference (content/profiles.toml).
pub const DECLARED_BASELINE: &str = "hf-transformers-static-cudagraph";
pub const EAGER_REFERENCE: &str = "hf-transformers-eager";

/// A valid E4B record (all lanes pass), unsigned, with the given run id: the sample with its baseline renamed to
/// the declared one and the eager path added as a context peer whose spread (35%) would fail a gating path (no integral rates: the canonical form writes 3.0 as 3).
pub fn record(run_id: &str) -> RunRecord {
    let mut r = RunRecord::parse(vkae_record::SAMPLE_RECORD.as_bytes()).unwrap();
    r.run_id = run_id.to_string();
    let mut eager = r.paths[0].clone();
    r.paths[0].name = DECLARED_BASELINE.to_string();
    r.paths[0].detail = Some("static KV cache, decode step captured as a CUDA graph".into());
    eager.role = vkae_record::Role::Peer;
    eager.tokens_per_s = vec![3.1, 4.2, 3.05];
    eager.gating = Some(false);
    r.paths.push(eager);
    r
}

pub fn signed(mut r: RunRecord, key: &SigningKey) -> Vec<u8> {
    r.sign(LANE_KEY, key).unwrap();
    r.to_json_bytes()
}

/// Record variants by what they fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every lane passes, claim-ready family: promotable.
    Good,
    /// Benchmark lane fails (token count does not add up).
    BadCount,
    /// Quality lane fails (perplexity off by 5%).
    BadQuality,
    /// Artifact lane fails (no kernel digest).
    NoDigest,
    /// Lanes pass but E2B is a porting track.
    PortingTrack,
}

pub fn record_of(kind: Kind, run_id: &str) -> RunRecord {
    let mut r = record(run_id);
    match kind {
        Kind::Good => {}
        Kind::BadCount => r.paths[1].tokens_generated += 1,
        Kind::BadQuality => r.quality.vkae_ppl = r.quality.reference_ppl * 1.05,
        Kind::NoDigest => r.engine.kernels_sha256 = None,
        Kind::PortingTrack => {
            r.model.family = "E2B".into();
            r.model.repo = "google/gemma-4-E2B-it".into();
        }
    }
    r
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn ingest_bytes(&self, bytes: Vec<u8>) -> Response {
        self.client
            .post(self.url("/api/internal/runs"))
            .bearer_auth(&self.ingest_token)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    pub async fn ingest(&self, r: RunRecord) -> Response {
        self.ingest_bytes(signed(r, &self.key)).await
    }

    pub async fn as_operator(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.operator_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    pub async fn promote(&self, run_id: &str) -> Response {
        self.as_operator(
            Method::POST,
            &format!("/api/internal/runs/{run_id}/promote"),
            Some(json!({ "level": "vkae-path", "reason": "lanes pass, reviewed" })),
        )
        .await
    }

    pub async fn retract(&self, run_id: &str) -> Response {
        self.as_operator(
            Method::POST,
            &format!("/api/internal/runs/{run_id}/retract"),
            Some(json!({ "reason": "withdrawn" })),
        )
        .await
    }

    /// Logs in through the API; returns (cookie header value, csrf token).
    pub async fn login(&self) -> (String, String) {
        let r = self
            .client
            .post(self.url("/api/internal/session"))
            .header("origin", &self.origin)
            .json(&json!({ "name": OPERATOR, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let set_cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        (cookie, body["csrf_token"].as_str().unwrap().to_string())
    }
}

pub async fn json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}
