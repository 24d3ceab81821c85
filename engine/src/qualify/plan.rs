//! The plan phase: one set of weight files every path loads (a checkpoint folder, or synthetic weights written
//! as one first), the model's identity in the record (family, repo, weights digest), and the token ids every
//! path decodes (the prompt, the quality stream).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::progress::Phase;
use super::record;
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
            let id = record::weights_digest(d)?;
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
