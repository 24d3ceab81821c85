//! From measurements to a signed `vkae.run.v1` record: the token accounting (TEST06-style), the weights
//! identity, the run id, and the record itself (built, validated by `vkae-record`'s own parser, signed).

use std::path::Path;

use anyhow::{bail, Context, Result};
use vkae_record::{
    Engine as RecordEngine, Hardware, Model as RecordModel, PathResult, Quality, Recipe, Role,
    RunRecord, SigningKey, UnavailablePath,
};

/// One measured path: a decode rate per timed repetition and the tokens really generated in those repetitions.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub name: String,
    pub role: Role,
    pub tokens_per_s: Vec<f64>,
    /// Counted from the generated sequences' lengths, never computed from the recipe.
    pub tokens_generated: u64,
    pub detail: Option<String>,
}

/// What `tokens_generated` must be: batch x output_tokens x repetitions.
pub fn expected_tokens(batch: usize, output_tokens: usize, reps: usize) -> u64 {
    (batch * output_tokens * reps) as u64
}

/// Tokens in the generated sequences of one repetition (prompt excluded), as returned.
pub fn count_generated(sequences: &[Vec<u32>]) -> u64 {
    sequences.iter().map(|s| s.len() as u64).sum()
}

/// A mismatch between the tokens generated and the recipe, as a line for the terminal (None when it adds up).
pub fn token_mismatch(m: &Measured, batch: usize, output_tokens: usize) -> Option<String> {
    let want = expected_tokens(batch, output_tokens, m.tokens_per_s.len());
    (m.tokens_generated != want).then(|| {
        format!(
            "TOKEN COUNT MISMATCH on {}: {} generated, batch {batch} x output {output_tokens} x {} reps = {want}",
            m.name,
            m.tokens_generated,
            m.tokens_per_s.len()
        )
    })
}

/// `sha256:HEX` over a checkpoint folder: for each of `config.json` and the `*.safetensors` files, in name
/// order, the file name, a NUL, the file's bytes, a NUL.
pub fn weights_digest(dir: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == "config.json" || n.ends_with(".safetensors"))
        .filter(|n| !n.starts_with('.') && n != "reference.safetensors")
        .collect();
    names.sort();
    if !names.iter().any(|n| n.ends_with(".safetensors")) {
        bail!("{}: no .safetensors files to digest", dir.display());
    }
    let mut h = Sha256::new();
    for n in &names {
        use std::io::Read;
        h.update(n.as_bytes());
        h.update([0u8]);
        let mut f = std::fs::File::open(dir.join(n))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = f.read(&mut buf)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
        }
        h.update([0u8]);
    }
    Ok(format!(
        "sha256:{}",
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

/// A run id: `qualify-FAMILY-DEVICE-bBATCH-YYYYMMDDTHHMMSSZ`, restricted to the record's id alphabet.
pub fn run_id(family: &str, device: &str, batch: usize, started_at: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    };
    let stamp: String = started_at
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut id = format!(
        "qualify-{}-{}-b{batch}-{stamp}",
        clean(family),
        clean(device)
    );
    id.truncate(128);
    id
}

/// Everything a record says, before signing.
pub struct RecordInputs<'a> {
    pub run_id: String,
    pub repo: &'a str,
    pub family: &'a str,
    pub weights: &'a str,
    pub hardware: Hardware,
    pub engine_version: &'a str,
    pub commit: Option<String>,
    pub kernels_sha256: Option<String>,
    pub kernels: Vec<String>,
    pub precision: &'a str,
    pub batch: usize,
    pub prompt_tokens: usize,
    pub output_tokens: usize,
    pub paths: Vec<Measured>,
    pub unavailable: Vec<UnavailablePath>,
    pub quality: Quality,
    pub started_at: String,
    pub finished_at: String,
}

/// Builds the record, checks it with the store's own parser (so a record the store would refuse as malformed
/// never leaves the harness), and signs it as `key_name`.
pub fn build_and_sign(
    inputs: RecordInputs<'_>,
    key_name: &str,
    key: &SigningKey,
) -> Result<RunRecord> {
    let mut record = RunRecord {
        schema: vkae_record::SCHEMA_V1.to_string(),
        run_id: inputs.run_id,
        model: RecordModel {
            repo: inputs.repo.to_string(),
            family: inputs.family.to_string(),
            weights: inputs.weights.to_string(),
        },
        hardware: inputs.hardware,
        engine: RecordEngine {
            version: inputs.engine_version.to_string(),
            commit: inputs.commit,
            kernels_sha256: inputs.kernels_sha256,
            kernels: inputs.kernels,
        },
        recipe: Recipe {
            precision: inputs.precision.to_string(),
            batch: inputs.batch as u32,
            prompt_tokens: inputs.prompt_tokens as u32,
            output_tokens: inputs.output_tokens as u32,
        },
        paths: inputs
            .paths
            .into_iter()
            .map(|m| PathResult {
                name: m.name,
                role: m.role,
                tokens_per_s: m.tokens_per_s,
                tokens_generated: m.tokens_generated,
                detail: m.detail,
            })
            .collect(),
        unavailable_paths: inputs.unavailable,
        quality: inputs.quality,
        started_at: inputs.started_at,
        finished_at: inputs.finished_at,
        lane_key: key_name.to_string(),
        signature: None,
    };
    record
        .sign(key_name, key)
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    let bytes = record.to_json_bytes();
    let parsed = RunRecord::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("the record would be refused: {e}"))?;
    record
        .verify(&key.verifying_key())
        .map_err(|e| anyhow::anyhow!("the signature does not verify: {e}"))?;
    Ok(parsed)
}
