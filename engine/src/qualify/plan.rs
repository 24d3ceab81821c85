//! The plan phase: one set of weight files every path loads (a checkpoint folder, or synthetic weights written
//! as one first), the model's identity in the record (family, repo, weights digest), and the token ids every
//! path decodes (the prompt, the quality stream).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::progress::Phase;
use super::settings::{BaselineKind, Settings, WeightsSource};
use crate::bench::bench_prompt;
use crate::config::Family;
use crate::{Model, TextConfig};

/// What every later phase works from.
pub struct RunPlan {
    pub model: Model,
    pub cfg: TextConfig,
    /// The checkpoint folder the reference side loads (None: synthetic weights kept in memory only).
    pub model_dir: Option<PathBuf>,
    pub weights_id: String,
    pub family: String,
    pub repo: String,
    pub prompt: Vec<u32>,
    /// The quality stream: `quality_tokens + 1` ids.
    pub q_ids: Vec<u32>,
}

/// The catalog slug of a family (what records and the store call it).
pub fn family_slug(f: Family) -> &'static str {
    match f {
        Family::E2B => "E2B",
        Family::E4B => "E4B",
        Family::B12 => "12B",
        Family::A4B26 => "26B-A4B",
        Family::B31 => "31B",
    }
}

/// The family whose official shape a config has (hidden size, layers, vocabulary), if any.
fn family_of(cfg: &TextConfig) -> Option<Family> {
    Family::ALL.into_iter().find(|f| {
        let c = f.config();
        c.hidden_size == cfg.hidden_size
            && c.num_hidden_layers == cfg.num_hidden_layers
            && c.vocab_size == cfg.vocab_size
    })
}

pub fn prepare(s: &Settings) -> Result<RunPlan> {
    let (model_dir, weights_id, synthetic_family) = match &s.weights {
        WeightsSource::Dir(d) => {
            let phase = Phase::start("weights digest", 1, s.progress_bars);
            let id = weights_digest(d)?;
            phase.finish(&id);
            (Some(d.clone()), id, None)
        }
        WeightsSource::Synthetic { family, seed } => {
            let dir = match (&s.baseline, &s.checkpoint_dir) {
                (_, Some(d)) => Some(d.clone()),
                (BaselineKind::Transformers, None) => Some(
                    std::env::temp_dir().join(format!("vkae-qualify-{}-seed{seed}", family.name())),
                ),
                (BaselineKind::CpuReference, None) => None,
            };
            if let Some(dir) = &dir {
                write_synthetic_checkpoint(*family, *seed, dir, s.progress_bars)?;
            }
            (dir, format!("synthetic:seed={seed}"), Some(*family))
        }
    };
    let phase = Phase::start("load weights", 1, s.progress_bars);
    let model = match (&model_dir, &s.weights) {
        (Some(d), _) => Model::load(d)?,
        (None, WeightsSource::Synthetic { family, seed }) => Model::synthetic(
            family.config(),
            *seed,
            format!("synthetic:{}:{seed}", family.name()),
        )?,
        (None, WeightsSource::Dir(_)) => unreachable!("a Dir source has a folder"),
    };
    let cfg = model.config.clone();
    phase.finish(&model.source);
    let family = match (&s.family, synthetic_family.or_else(|| family_of(&cfg))) {
        (Some(f), _) => f.clone(),
        (None, Some(f)) => family_slug(f).to_string(),
        (None, None) => bail!("the model's shape matches no official family: give --family"),
    };
    let repo = s
        .repo
        .clone()
        .unwrap_or_else(|| format!("google/gemma-4-{family}"));
    let prompt = bench_prompt(cfg.vocab_size, s.prompt_tokens, s.prompt_seed);
    let q_ids = bench_prompt(cfg.vocab_size, s.quality_tokens + 1, s.quality_seed);
    Ok(RunPlan {
        model,
        cfg,
        model_dir,
        weights_id,
        family,
        repo,
        prompt,
        q_ids,
    })
}

fn write_synthetic_checkpoint(family: Family, seed: u64, dir: &Path, bars: bool) -> Result<()> {
    let marker = dir.join(".vkae-synthetic");
    let want = format!("synthetic:{}:{seed}\n", family.name());
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        eprintln!(
            "[qualify] reusing the synthetic checkpoint in {}",
            dir.display()
        );
        return Ok(());
    }
    let phase = Phase::start("write checkpoint", 2, bars);
    let m = Model::synthetic(family.config(), seed, want.trim().to_string())?;
    phase.inc("weights generated");
    m.write_checkpoint(dir, 4_000_000_000)?;
    std::fs::write(&marker, &want)?;
    phase.inc("written");
    phase.finish(&dir.display().to_string());
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weights_digest_covers_config_and_weights_only() {
        let dir = std::env::temp_dir().join(format!("vkae-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            weights_digest(&dir).is_err(),
            "an empty folder has no weights"
        );
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), b"weights").unwrap();
        let a = weights_digest(&dir).unwrap();
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
        std::fs::write(dir.join("reference.safetensors"), b"test data, not weights").unwrap();
        std::fs::write(dir.join("README.md"), b"notes").unwrap();
        assert_eq!(weights_digest(&dir).unwrap(), a);
        std::fs::write(dir.join("model.safetensors"), b"weightz").unwrap();
        assert_ne!(weights_digest(&dir).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
