//! # vkae-record: the `vkae.run.v1` run record
//!
//! One Rust type, [`RunRecord`], shared by the engine's qualification harness (which writes and signs records)
//! and the evidence store (which parses, verifies and judges them). The JSON Schema of the same document lives
//! in `schema/vkae.run.v1.json`.
//!
//! ## Contract
//! - [`RunRecord::parse`] is strict: an unknown `schema`, an unknown or missing field, a wrong type, an
//!   out-of-range number, a malformed timestamp or weights reference is an error naming the field
//!   (a JSON path such as `paths[1].tokens_per_s[0]`).
//! - The signature is base64 (standard alphabet, padded) Ed25519 over [`RunRecord::canonical_unsigned_bytes`]:
//!   the RFC 8785 (JCS) canonical form of the record without its `signature` member.
//! - What is signed is exactly what is stored: `parse` refuses a document whose canonical form differs from the
//!   canonical form of the parsed type (e.g. an explicit `null` for an optional member), so a verifier that
//!   re-serialises the typed record checks the same bytes the signer signed.
//! - Keys travel as base64 of their 32 raw bytes: a secret key file holds the seed, a public key is what
//!   `vkae lane-key add NAME PUBLIC_KEY_BASE64` takes.
//!
//! ```
//! use vkae_record::{keygen, RunRecord};
//! let (signing, verifying) = keygen();
//! let mut record = RunRecord::parse(vkae_record::SAMPLE_RECORD.as_bytes()).unwrap();
//! record.sign("lab-h200", &signing).unwrap();
//! record.verify(&verifying).unwrap();
//! let again = RunRecord::parse(&record.to_json_bytes()).unwrap();
//! assert_eq!(again, record);
//! ```

pub mod jcs;
pub mod stats;
mod time;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use time::Timestamp;

/// The schema identifier this crate reads and writes.
pub const SCHEMA_V1: &str = "vkae.run.v1";

/// A valid, unsigned sample record (the one in `schema/sample.run.json`).
pub const SAMPLE_RECORD: &str = include_str!("../schema/sample.run.json");

/// The JSON Schema (draft 2020-12) of the record.
pub const JSON_SCHEMA: &str = include_str!("../schema/vkae.run.v1.json");

/// The largest integer a JCS number keeps exactly (2^53).
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// A qualification run as the harness reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// Always `"vkae.run.v1"`.
    pub schema: String,
    /// Unique id chosen by the harness: 1 to 128 of `A-Z a-z 0-9 . _ : -`.
    pub run_id: String,
    pub model: Model,
    pub hardware: Hardware,
    pub engine: Engine,
    pub recipe: Recipe,
    /// Every measured path, one entry per path (the baseline, VKAE's path, peers).
    pub paths: Vec<PathResult>,
    /// Paths that were attempted but produced no number, each with its reason (e.g. a peer that failed to build).
    pub unavailable_paths: Vec<UnavailablePath>,
    pub quality: Quality,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, not before `started_at`.
    pub finished_at: String,
    /// Name of the registered lane key that signed the record.
    pub lane_key: String,
    /// Base64 Ed25519 signature; absent on an unsigned record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Hugging Face repo id, e.g. `google/gemma-4-E4B-it`.
    pub repo: String,
    /// Catalog family slug, e.g. `E4B`.
    pub family: String,
    /// `synthetic:seed=N` or `sha256:<64 lower-case hex>`.
    pub weights: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    /// GPU name as the catalog spells it or as the driver reports it, e.g. `NVIDIA H200`.
    pub gpu: String,
    pub gpu_count: u32,
    pub driver: String,
    pub cuda: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub version: String,
    /// Git commit of the engine (hex); absent fails the artifact lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// SHA-256 (hex) of the kernel sources/binaries that ran; absent fails the artifact lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels_sha256: Option<String>,
    /// Names of the kernels that were switched on for the VKAE path.
    pub kernels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// e.g. `bf16`.
    pub precision: String,
    pub batch: u32,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    /// The serving recipe the run was measured under: its name (optional; with `sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SHA-256 (64 lowercase hex) of the recipe file's bytes (optional; with `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The role a path plays in a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Baseline,
    Vkae,
    Peer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Baseline => "baseline",
            Role::Vkae => "vkae",
            Role::Peer => "peer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathResult {
    pub name: String,
    pub role: Role,
    /// One decode rate per timed repetition, warm-up excluded.
    pub tokens_per_s: Vec<f64>,
    /// Tokens generated over all timed repetitions.
    pub tokens_generated: u64,
    /// Free-form note (versions, flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `false`: the path only gives context (reported with its spread, gating no claim); absent: it gates.
    /// Only `false` is written, so records without the member keep their meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gating: Option<bool>,
}

impl PathResult {
    /// Whether the path gates a claim (its repetitions and spread are held to the benchmark rules).
    pub fn gates(&self) -> bool {
        self.gating != Some(false)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnavailablePath {
    pub name: String,
    pub role: Role,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quality {
    /// Tokens scored.
    pub tokens: u64,
    pub reference_ppl: f64,
    pub vkae_ppl: f64,
    /// Fraction of positions where VKAE's top-1 token equals the reference's, in [0, 1].
    pub top1_agreement: f64,
    /// Mean KL divergence of VKAE's distribution from the reference's, >= 0.
    pub mean_kl: f64,
}

/// Why a record was refused. `field` is a JSON path (`""` for the whole document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub kind: RecordErrorKind,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordErrorKind {
    /// Not JSON, wrong types, unknown/missing fields, values out of range.
    Malformed,
    /// `schema` names a version this crate does not read.
    UnknownSchema,
    /// No `signature`.
    Unsigned,
    /// The signature is not valid base64 Ed25519 or does not verify.
    BadSignature,
    /// A key is not base64 of 32 bytes.
    BadKey,
}

impl RecordErrorKind {
    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            RecordErrorKind::Malformed => "malformed_record",
            RecordErrorKind::UnknownSchema => "unknown_schema",
            RecordErrorKind::Unsigned => "unsigned",
            RecordErrorKind::BadSignature => "bad_signature",
            RecordErrorKind::BadKey => "bad_key",
        }
    }
}

impl RecordError {
    fn new(kind: RecordErrorKind, field: impl Into<String>, message: impl Into<String>) -> Self {
        RecordError {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }
    fn malformed(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(RecordErrorKind::Malformed, field, message)
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for RecordError {}

impl RunRecord {
    /// Parses and validates a record (see the crate docs for what is refused). A missing signature is allowed
    /// here (the store refuses unsigned records; the harness signs after building).
    pub fn parse(bytes: &[u8]) -> Result<RunRecord, RecordError> {
        let raw: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| RecordError::malformed("", format!("not valid JSON: {e}")))?;
        let object = raw
            .as_object()
            .ok_or_else(|| RecordError::malformed("", "a run record is a JSON object"))?;
        match object.get("schema") {
            None => return Err(RecordError::malformed("schema", "missing field")),
            Some(serde_json::Value::String(s)) if s == SCHEMA_V1 => {}
            Some(other) => {
                return Err(RecordError::new(
                    RecordErrorKind::UnknownSchema,
                    "schema",
                    format!("unknown schema {other}; this store reads \"{SCHEMA_V1}\""),
                ))
            }
        }
        let record: RunRecord = serde_path_to_error::deserialize(&raw).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde reports a missing member at its parent; name the member itself.
            let field = match (inner.strip_prefix("missing field `"), path.as_str()) {
                (Some(rest), p) => {
                    let name = rest.split('`').next().unwrap_or_default();
                    if p == "." || p.is_empty() {
                        name.to_string()
                    } else {
                        format!("{p}.{name}")
                    }
                }
                (None, ".") => String::new(),
                (None, p) => p.to_string(),
            };
            RecordError::malformed(field, inner)
        })?;
        record.validate()?;
        // What is signed must be what is stored: the document must round-trip through the type.
        let mut raw_unsigned = raw;
        raw_unsigned
            .as_object_mut()
            .expect("checked above")
            .remove("signature");
        let raw_canonical = jcs::canonicalize(&raw_unsigned)
            .map_err(|e| RecordError::malformed("", e.to_string()))?;
        if raw_canonical != record.canonical_unsigned_bytes() {
            return Err(RecordError::malformed(
                "",
                "the record does not round-trip (an optional member given as null?); omit absent members",
            ));
        }
        Ok(record)
    }

    fn validate(&self) -> Result<(), RecordError> {
        fn m(field: impl Into<String>, message: impl Into<String>) -> RecordError {
            RecordError::malformed(field, message)
        }
        if !valid_id(&self.run_id) {
            return Err(m(
                "run_id",
                "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -",
            ));
        }
        non_empty("model.repo", &self.model.repo)?;
        non_empty("model.family", &self.model.family)?;
        validate_weights(&self.model.weights)?;
        non_empty("hardware.gpu", &self.hardware.gpu)?;
        if self.hardware.gpu_count == 0 {
            return Err(m("hardware.gpu_count", "must be at least 1"));
        }
        non_empty("engine.version", &self.engine.version)?;
        non_empty("recipe.precision", &self.recipe.precision)?;
        if self.recipe.batch == 0 {
            return Err(m("recipe.batch", "must be at least 1"));
        }
        if self.recipe.output_tokens == 0 {
            return Err(m("recipe.output_tokens", "must be at least 1"));
        }
        match (&self.recipe.name, &self.recipe.sha256) {
            (None, None) => {}
            (Some(name), Some(sha)) => {
                non_empty("recipe.name", name)?;
                if !(sha.len() == 64
                    && sha
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
                {
                    return Err(m(
                        "recipe.sha256",
                        "must be 64 lowercase hex digits (SHA-256 of the recipe file)",
                    ));
                }
            }
            (Some(_), None) => return Err(m("recipe.sha256", "a named recipe needs its sha256")),
            (None, Some(_)) => {
                return Err(m("recipe.name", "a recipe sha256 needs the recipe's name"))
            }
        }
        if self.paths.is_empty() {
            return Err(m("paths", "at least one measured path is required"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, path) in self.paths.iter().enumerate() {
            non_empty(&format!("paths[{i}].name"), &path.name)?;
            if !names.insert(path.name.as_str()) {
                return Err(m(
                    format!("paths[{i}].name"),
                    format!("duplicate path name {:?}", path.name),
                ));
            }
            if path.tokens_per_s.is_empty() {
                return Err(m(
                    format!("paths[{i}].tokens_per_s"),
                    "at least one repetition is required",
                ));
            }
            for (j, rate) in path.tokens_per_s.iter().enumerate() {
                if !(rate.is_finite() && *rate > 0.0) {
                    return Err(m(
                        format!("paths[{i}].tokens_per_s[{j}]"),
                        "must be a positive finite number",
                    ));
                }
            }
            if path.tokens_generated > MAX_EXACT_INTEGER {
                return Err(m(format!("paths[{i}].tokens_generated"), "exceeds 2^53"));
            }
            if path.gating == Some(true) {
                return Err(m(
                    format!("paths[{i}].gating"),
                    "only false is written (absent means the path gates)",
                ));
            }
        }
        for (i, path) in self.unavailable_paths.iter().enumerate() {
            non_empty(&format!("unavailable_paths[{i}].name"), &path.name)?;
            non_empty(&format!("unavailable_paths[{i}].reason"), &path.reason)?;
        }
        let q = &self.quality;
        if q.tokens == 0 || q.tokens > MAX_EXACT_INTEGER {
            return Err(m("quality.tokens", "must be between 1 and 2^53"));
        }
        for (field, value) in [
            ("quality.reference_ppl", q.reference_ppl),
            ("quality.vkae_ppl", q.vkae_ppl),
        ] {
            if !(value.is_finite() && value >= 1.0) {
                return Err(m(field, "a perplexity is a finite number >= 1"));
            }
        }
        if !(q.top1_agreement.is_finite() && (0.0..=1.0).contains(&q.top1_agreement)) {
            return Err(m("quality.top1_agreement", "must be within [0, 1]"));
        }
        if !(q.mean_kl.is_finite() && q.mean_kl >= 0.0) {
            return Err(m("quality.mean_kl", "must be a finite number >= 0"));
        }
        let started = Timestamp::parse(&self.started_at).map_err(|e| m("started_at", e))?;
        let finished = Timestamp::parse(&self.finished_at).map_err(|e| m("finished_at", e))?;
        if finished < started {
            return Err(m("finished_at", "is before started_at"));
        }
        non_empty("lane_key", &self.lane_key)?;
        Ok(())
    }

    /// The record as a `serde_json::Value` (signature included when present).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a RunRecord always serialises")
    }

    /// Pretty JSON bytes of the whole record.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a RunRecord always serialises")
    }

    /// RFC 8785 canonical bytes of the record without `signature`: the bytes that are signed.
    pub fn canonical_unsigned_bytes(&self) -> Vec<u8> {
        let mut value = self.to_value();
        value
            .as_object_mut()
            .expect("a record is an object")
            .remove("signature");
        jcs::canonicalize(&value).expect("validated records have only finite numbers")
    }

    /// Sets `lane_key` to `key_name` and signs the record.
    pub fn sign(&mut self, key_name: &str, key: &SigningKey) -> Result<(), RecordError> {
        non_empty("lane_key", key_name)?;
        self.lane_key = key_name.to_string();
        self.signature = None;
        let signature = key.sign(&self.canonical_unsigned_bytes());
        self.signature = Some(BASE64.encode(signature.to_bytes()));
        Ok(())
    }

    /// Checks the signature against `key`. Unsigned, undecodable and non-verifying signatures are errors.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), RecordError> {
        let encoded = self.signature.as_deref().ok_or_else(|| {
            RecordError::new(
                RecordErrorKind::Unsigned,
                "signature",
                "the record is not signed",
            )
        })?;
        let bytes = BASE64.decode(encoded).map_err(|e| {
            RecordError::new(
                RecordErrorKind::BadSignature,
                "signature",
                format!("not base64: {e}"),
            )
        })?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| {
            RecordError::new(
                RecordErrorKind::BadSignature,
                "signature",
                "an Ed25519 signature is 64 bytes",
            )
        })?;
        key.verify_strict(&self.canonical_unsigned_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| {
                RecordError::new(
                    RecordErrorKind::BadSignature,
                    "signature",
                    format!("does not verify under lane key {:?}: the record was altered or signed by another key", self.lane_key),
                )
            })
    }

    /// RFC 8785 canonical bytes of the whole record, signature included (the identity of a stored record).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        jcs::canonicalize(&self.to_value()).expect("validated records have only finite numbers")
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), RecordError> {
    if value.trim().is_empty() {
        Err(RecordError::malformed(field, "must not be empty"))
    } else if value.len() > 4096 {
        Err(RecordError::malformed(field, "longer than 4096 bytes"))
    } else {
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn validate_weights(weights: &str) -> Result<(), RecordError> {
    let ok = if let Some(seed) = weights.strip_prefix("synthetic:seed=") {
        !seed.is_empty()
            && seed.len() <= 20
            && seed.bytes().all(|b| b.is_ascii_digit())
            && seed.parse::<u64>().is_ok()
    } else if let Some(hex) = weights.strip_prefix("sha256:") {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(RecordError::malformed(
            "model.weights",
            "must be \"synthetic:seed=N\" or \"sha256:\" followed by 64 lower-case hex digits",
        ))
    }
}

/// A fresh Ed25519 key pair from the operating system's random source.
pub fn keygen() -> (SigningKey, VerifyingKey) {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random source is available");
    let signing = SigningKey::from_bytes(&seed);
    let verifying = signing.verifying_key();
    (signing, verifying)
}

/// Base64 of a secret key's 32-byte seed (the content of a secret key file).
pub fn encode_signing_key(key: &SigningKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Base64 of a public key's 32 bytes (what `vkae lane-key add NAME PUBLIC_KEY_BASE64` takes).
pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    BASE64.encode(key.to_bytes())
}

fn decode_32(text: &str, what: &str) -> Result<[u8; 32], RecordError> {
    let bytes = BASE64.decode(text.trim()).map_err(|e| {
        RecordError::new(
            RecordErrorKind::BadKey,
            "",
            format!("{what} is not base64: {e}"),
        )
    })?;
    bytes.try_into().map_err(|_| {
        RecordError::new(
            RecordErrorKind::BadKey,
            "",
            format!("{what} must be base64 of 32 bytes"),
        )
    })
}

/// Parses base64 of a 32-byte seed.
pub fn decode_signing_key(text: &str) -> Result<SigningKey, RecordError> {
    Ok(SigningKey::from_bytes(&decode_32(text, "secret key")?))
}

/// Parses base64 of a 32-byte public key (rejects points that are not valid keys).
pub fn decode_verifying_key(text: &str) -> Result<VerifyingKey, RecordError> {
    VerifyingKey::from_bytes(&decode_32(text, "public key")?).map_err(|_| {
        RecordError::new(
            RecordErrorKind::BadKey,
            "",
            "public key is not a valid Ed25519 point",
        )
    })
}

/// Reads a secret key file (base64 of the seed, surrounding whitespace ignored).
pub fn read_signing_key_file(path: &Path) -> std::io::Result<SigningKey> {
    let text = std::fs::read_to_string(path)?;
    decode_signing_key(&text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// A lane key pair written by [`write_keypair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypairFiles {
    /// Base64 of the public key (what `vkae lane-key add NAME PUBLIC_KEY_BASE64` takes).
    pub public_key: String,
    /// `SECRET_KEY_FILE.pub`, holding `public_key` and a newline.
    pub public_key_file: PathBuf,
}

impl KeypairFiles {
    /// The operator's next steps after `keygen` (both binaries print this to stderr, the public key to stdout).
    pub fn instructions(&self, secret_key_file: &Path) -> String {
        let lane = secret_key_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lane".into());
        format!(
            "secret key: {} (keep it out of git); public key: {}\nregister it with: vkae lane-key add {lane} {}",
            secret_key_file.display(),
            self.public_key_file.display(),
            self.public_key
        )
    }
}

/// Generates a lane key pair and writes it: the secret key to `secret_key_file` (created, never overwritten;
/// mode 0600 on Unix) and the public key beside it in `secret_key_file.pub`. Both `vkae keygen` and
/// `vkae-engine keygen` call this, so the two behave the same.
pub fn write_keypair(secret_key_file: &Path) -> std::io::Result<KeypairFiles> {
    let (secret, public) = keygen();
    write_signing_key_file(secret_key_file, &secret)?;
    let public_key = encode_verifying_key(&public);
    let mut name = secret_key_file.as_os_str().to_owned();
    name.push(".pub");
    let public_key_file = PathBuf::from(name);
    std::fs::write(&public_key_file, format!("{public_key}\n"))?;
    Ok(KeypairFiles {
        public_key,
        public_key_file,
    })
}

/// Writes a secret key file (mode 0600 on Unix) holding base64 of the seed and a newline.
pub fn write_signing_key_file(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{}", encode_signing_key(key))?;
    file.sync_all()
}
