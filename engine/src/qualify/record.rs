//! From measurements to a signed `vkae.run.v1` record: the token accounting (TEST06-style), the weights
//! identity, the run id, and the record itself (built, validated by `vkae-record`'s own parser, signed).

use super::engine_paths::EngineSide;
use super::plan::RunPlan;
use super::publish::write_atomically;
use super::quality::QualityFigures;
use super::settings::{RecipeFile, Settings};
use anyhow::Result;
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
    /// false: the path only gives context (its spread is reported, it gates no claim).
    pub gating: bool,
}

/// What `tokens_generated` must be: batch x output_tokens x repetitions.
pub fn expected_tokens(batch: usize, output_tokens: usize, reps: usize) -> u64 {
    (batch * output_tokens * reps) as u64
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
    /// The serving recipe the run was measured under (`--recipe`).
    pub recipe: Option<RecipeFile>,
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
            name: inputs.recipe.as_ref().map(|r| r.name.clone()),
            sha256: inputs.recipe.map(|r| r.sha256),
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
                gating: (!m.gating).then_some(false),
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

/// The record phase: what every batch's record shares (model, machine, code, quality), and writing one.
pub struct Writer<'a> {
    s: &'a Settings,
    plan: &'a RunPlan,
    hardware: Hardware,
    commit: Option<String>,
    kernels_sha256: Option<String>,
    kernels: Vec<String>,
    precision: &'static str,
    quality: Quality,
    /// The kernel path's failure, listed in every record.
    engine_unavailable: Option<UnavailablePath>,
    key: &'a SigningKey,
    started_at: &'a str,
}

impl<'a> Writer<'a> {
    pub fn new(
        s: &'a Settings,
        plan: &'a RunPlan,
        engine: &EngineSide,
        figures: &QualityFigures,
        key: &'a SigningKey,
        started_at: &'a str,
    ) -> Writer<'a> {
        let (kernels_sha256, kernels, precision) = engine.kernels(s.backend);
        let q = &figures.record;
        Writer {
            s,
            plan,
            hardware: engine.hardware.clone(),
            commit: super::provenance::engine_commit(s.engine_commit.as_deref()),
            kernels_sha256,
            kernels,
            precision,
            quality: Quality {
                tokens: q.tokens as u64,
                reference_ppl: q.reference_ppl,
                vkae_ppl: q.candidate_ppl,
                top1_agreement: q.top1_agreement,
                mean_kl: q.mean_kl,
            },
            engine_unavailable: engine.unavailable.clone(),
            key,
            started_at,
        }
    }

    /// Builds, checks and signs batch `b`'s record and writes it to its file.
    pub fn write(
        &self,
        b: usize,
        paths: Vec<Measured>,
        mut unavailable: Vec<UnavailablePath>,
    ) -> Result<(std::path::PathBuf, RunRecord)> {
        let (s, plan) = (self.s, self.plan);
        unavailable.extend(self.engine_unavailable.clone());
        let rec = build_and_sign(
            RecordInputs {
                run_id: run_id(&plan.family, &self.hardware.gpu, b, self.started_at),
                repo: &plan.repo,
                family: &plan.family,
                weights: &plan.weights_id,
                hardware: self.hardware.clone(),
                engine_version: env!("CARGO_PKG_VERSION"),
                commit: self.commit.clone(),
                kernels_sha256: self.kernels_sha256.clone(),
                kernels: self.kernels.clone(),
                precision: self.precision,
                batch: b,
                prompt_tokens: s.prompt_tokens,
                output_tokens: s.output_tokens,
                recipe: s.recipe.clone(),
                paths,
                unavailable,
                quality: self.quality.clone(),
                started_at: self.started_at.to_string(),
                finished_at: vkae_record::Timestamp::now().to_rfc3339(),
            },
            &s.lane_key_name,
            self.key,
        )?;
        let out = s.out_for(b);
        write_atomically(&out, &rec.to_json_bytes())?;
        Ok((out, rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qualify::paths::count_generated;

    fn measured(name: &str, role: Role, reps: usize, tokens: u64) -> Measured {
        Measured {
            name: name.into(),
            role,
            tokens_per_s: (0..reps).map(|i| 100.0 + i as f64).collect(),
            tokens_generated: tokens,
            detail: None,
            gating: true,
        }
    }

    fn inputs(paths: Vec<Measured>) -> RecordInputs<'static> {
        RecordInputs {
            run_id: run_id("E4B", "NVIDIA H200", 8, "2026-11-28T10:00:00Z"),
            repo: "google/gemma-4-E4B",
            family: "E4B",
            weights: "synthetic:seed=0",
            hardware: Hardware {
                gpu: "NVIDIA H200".into(),
                gpu_count: 1,
                driver: "580.159.03".into(),
                cuda: "13.0".into(),
            },
            engine_version: "0.1.0",
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            kernels_sha256: Some("ab".repeat(32)),
            kernels: vec!["rms_norm_f32".into()],
            precision: "bf16",
            batch: 8,
            prompt_tokens: 128,
            output_tokens: 128,
            recipe: None,
            paths,
            unavailable: vec![UnavailablePath {
                name: "hf-transformers-static-compile".into(),
                role: Role::Peer,
                reason: "killed by signal 11 (segmentation fault)".into(),
            }],
            quality: Quality {
                tokens: 2048,
                reference_ppl: 100.0,
                vkae_ppl: 100.5,
                top1_agreement: 0.9,
                mean_kl: 0.001,
            },
            started_at: "2026-11-28T10:00:00Z".into(),
            finished_at: "2026-11-28T10:05:00Z".into(),
        }
    }

    #[test]
    fn token_accounting_counts_what_came_back() {
        assert_eq!(expected_tokens(8, 128, 3), 3072);
        let full = vec![vec![7u32; 128]; 8];
        assert_eq!(count_generated(&full), 1024);
        let mut short = full.clone();
        short[3].truncate(100); // e.g. an EOS stop
        assert_eq!(count_generated(&short), 996);
        let ok = measured("vkae", Role::Vkae, 3, 3 * count_generated(&full));
        assert_eq!(token_mismatch(&ok, 8, 128), None);
        let bad = measured(
            "vkae",
            Role::Vkae,
            3,
            2 * count_generated(&full) + count_generated(&short),
        );
        let line = token_mismatch(&bad, 8, 128).expect("a short sequence shows");
        assert!(
            line.contains("3044 generated") && line.contains("= 3072"),
            "{line}"
        );
    }

    #[test]
    fn a_built_record_parses_verifies_and_a_change_breaks_the_signature() {
        let (key, public) = vkae_record::keygen();
        let rec = build_and_sign(
            inputs(vec![
                measured("hf-transformers-eager", Role::Baseline, 3, 3072),
                measured("vkae", Role::Vkae, 3, 3072),
            ]),
            "h200-lab",
            &key,
        )
        .unwrap();
        assert_eq!(rec.lane_key, "h200-lab");
        assert_eq!(rec.unavailable_paths.len(), 1);
        rec.verify(&public).unwrap();
        let again = RunRecord::parse(&rec.to_json_bytes()).unwrap();
        assert_eq!(again, rec);
        let mut tampered = rec.clone();
        tampered.paths[1].tokens_per_s[0] *= 2.0;
        let err = tampered.verify(&public).unwrap_err();
        assert_eq!(err.kind, vkae_record::RecordErrorKind::BadSignature);
        let (_, other) = vkae_record::keygen();
        assert!(
            rec.verify(&other).is_err(),
            "another lane's key must not verify it"
        );
    }

    #[test]
    fn a_context_path_and_the_recipe_are_signed_into_the_record() {
        let (key, _) = vkae_record::keygen();
        let mut eager = measured("hf-transformers-eager", Role::Peer, 3, 3072);
        eager.gating = false;
        let mut i = inputs(vec![
            measured("hf-transformers-static-cudagraph", Role::Baseline, 3, 3072),
            measured("vkae", Role::Vkae, 3, 3072),
            eager,
        ]);
        i.recipe = Some(RecipeFile {
            name: "e4b-h200".into(),
            sha256: "ab".repeat(32),
        });
        let rec = build_and_sign(i, "lab", &key).unwrap();
        let gates: Vec<bool> = rec.paths.iter().map(|p| p.gates()).collect();
        assert_eq!(gates, [true, true, false]);
        let v = rec.to_value();
        assert_eq!(v["paths"][2]["gating"], false);
        assert!(
            v["paths"][0].get("gating").is_none(),
            "a gating path carries no member"
        );
        assert_eq!(v["recipe"]["name"], "e4b-h200");
        assert_eq!(v["recipe"]["sha256"], "ab".repeat(32));
    }

    #[test]
    fn a_record_the_store_would_refuse_never_leaves_the_harness() {
        let (key, _) = vkae_record::keygen();
        let mut bad = inputs(vec![measured("vkae", Role::Vkae, 3, 3072)]);
        bad.paths[0].tokens_per_s[1] = f64::NAN;
        let err = build_and_sign(bad, "lab", &key).unwrap_err().to_string();
        assert!(err.contains("paths[0].tokens_per_s"), "{err}");
        let mut bad = inputs(vec![measured("vkae", Role::Vkae, 3, 3072)]);
        bad.quality.reference_ppl = 0.5;
        let err = build_and_sign(bad, "lab", &key).unwrap_err().to_string();
        assert!(err.contains("quality.reference_ppl"), "{err}");
    }

    #[test]
    fn run_ids_use_the_record_alphabet() {
        let id = run_id(
            "26B-A4B",
            "CPU only (AMD EPYC 7B13, 2 threads)",
            32,
            "2026-11-28T10:00:00Z",
        );
        assert_eq!(
            id,
            "qualify-26b-a4b-cpu-only-amd-epyc-7b13-2-threads-b32-20261128T100000Z"
        );
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)));
        assert!(run_id("E4B", &"x".repeat(300), 1, "2026-11-28T10:00:00Z").len() <= 128);
    }
}
