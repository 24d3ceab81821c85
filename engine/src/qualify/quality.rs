//! The quality guard's arithmetic: two `[rows, vocab]` logit matrices (a reference and a candidate) over the same
//! teacher-forced token stream, compared row by row in f64.
//!
//! Row `r` holds the logits that predict `ids[r + 1]`, so a stream of `n + 1` ids scores `n` rows. Per row:
//! log-softmax of each side (max-shifted, f64), the target's log-probability on each side, whether the two
//! argmaxes agree, and KL(reference || candidate) = sum_v p_ref(v) (log p_ref(v) - log p_cand(v)) over the
//! full vocabulary. Perplexity is `exp(-mean log p(target))`.
//!
//! Matrices are large (2,048 x 262,144 f32 = 2.1 GB for E4B), so a side is either in memory or a raw
//! little-endian f32 file that is memory-mapped: no side is ever copied.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;

/// One side of the comparison: a `[rows, vocab]` row-major f32 matrix.
pub enum Logits {
    Memory(Vec<f32>),
    Mapped(memmap2::Mmap),
}

impl Logits {
    /// Maps a raw f32 file written by the reference child; its size must be exactly `rows * vocab * 4` bytes.
    pub fn map_file(path: &Path, rows: usize, vocab: usize) -> Result<Logits> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        let want = (rows * vocab * 4) as u64;
        if len != want {
            bail!(
                "{}: {len} bytes, expected {rows} rows x {vocab} logits x 4 bytes = {want}",
                path.display()
            );
        }
        // SAFETY: the file is private to this run's work folder and is not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("mapping {}", path.display()))?;
        Ok(Logits::Mapped(map))
    }

    fn as_slice(&self) -> &[f32] {
        match self {
            Logits::Memory(v) => v,
            Logits::Mapped(m) => {
                assert!(
                    (m.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f32>()),
                    "mmap is page-aligned"
                );
                // SAFETY: a page-aligned mapping of `len` bytes viewed as f32 (length checked at map time).
                unsafe { std::slice::from_raw_parts(m.as_ptr() as *const f32, m.len() / 4) }
            }
        }
    }
}

/// What the guard reports for one (reference, candidate) pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Rows scored (positions with a next token).
    pub tokens: usize,
    pub reference_ppl: f64,
    pub candidate_ppl: f64,
    /// Fraction of rows whose argmax agrees.
    pub top1_agreement: f64,
    /// Mean over rows of KL(reference || candidate), nats.
    pub mean_kl: f64,
    /// Largest single-row KL, nats (where a disagreement concentrates).
    pub max_kl: f64,
}

impl Comparison {
    /// |candidate_ppl - reference_ppl| / reference_ppl.
    pub fn ppl_relative(&self) -> f64 {
        (self.candidate_ppl - self.reference_ppl).abs() / self.reference_ppl
    }
}

struct Row {
    ref_logp: f64,
    cand_logp: f64,
    agree: bool,
    kl: f64,
}

fn log_softmax_parts(x: &[f32]) -> (f64, usize) {
    let (mut max, mut arg) = (f64::NEG_INFINITY, 0usize);
    for (i, &v) in x.iter().enumerate() {
        if f64::from(v) > max {
            max = f64::from(v);
            arg = i;
        }
    }
    let sum: f64 = x.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    (max + sum.ln(), arg)
}

fn compare_row(r: &[f32], c: &[f32], target: usize) -> Row {
    let (lse_r, arg_r) = log_softmax_parts(r);
    let (lse_c, arg_c) = log_softmax_parts(c);
    let mut kl = 0.0f64;
    for (&a, &b) in r.iter().zip(c) {
        let lr = f64::from(a) - lse_r;
        let lc = f64::from(b) - lse_c;
        kl += lr.exp() * (lr - lc);
    }
    Row {
        ref_logp: f64::from(r[target]) - lse_r,
        cand_logp: f64::from(c[target]) - lse_c,
        agree: arg_r == arg_c,
        // Rounding can leave a hair below zero when the two rows are identical.
        kl: kl.max(0.0),
    }
}

/// Compares `candidate` against `reference` over the stream `ids` (`ids.len()` rows of logits each; the last
/// row has no target and is not scored). NaN or infinite logits are an error, never a score.
pub fn compare(
    reference: &Logits,
    candidate: &Logits,
    ids: &[u32],
    vocab: usize,
) -> Result<Comparison> {
    let rows = ids.len();
    if rows < 2 {
        bail!("the quality stream needs at least two tokens");
    }
    let (r, c) = (reference.as_slice(), candidate.as_slice());
    for (name, side) in [("reference", r), ("candidate", c)] {
        if side.len() != rows * vocab {
            bail!(
                "{name} logits hold {} values, expected {rows} rows x {vocab}",
                side.len()
            );
        }
    }
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
        bail!("token id {bad} is outside the vocabulary ({vocab})");
    }
    let scored = rows - 1;
    let per_row: Vec<Row> = (0..scored)
        .into_par_iter()
        .map(|i| {
            let rr = &r[i * vocab..(i + 1) * vocab];
            let cr = &c[i * vocab..(i + 1) * vocab];
            compare_row(rr, cr, ids[i + 1] as usize)
        })
        .collect();
    for (i, row) in per_row.iter().enumerate() {
        for (name, v) in [
            ("reference", row.ref_logp),
            ("candidate", row.cand_logp),
            ("KL", row.kl),
        ] {
            if !v.is_finite() {
                bail!("row {i}: the {name} value is {v} (NaN or infinite logits)");
            }
        }
    }
    let n = scored as f64;
    let mean_ref = per_row.iter().map(|x| x.ref_logp).sum::<f64>() / n;
    let mean_cand = per_row.iter().map(|x| x.cand_logp).sum::<f64>() / n;
    Ok(Comparison {
        tokens: scored,
        reference_ppl: (-mean_ref).exp(),
        candidate_ppl: (-mean_cand).exp(),
        top1_agreement: per_row.iter().filter(|x| x.agree).count() as f64 / n,
        mean_kl: per_row.iter().map(|x| x.kl).sum::<f64>() / n,
        max_kl: per_row.iter().map(|x| x.kl).fold(0.0, f64::max),
    })
}

/// A reference-side result for the guard: a file the reference child wrote (and its f32 twin), or logits in
/// memory.
pub enum ReferenceLogits {
    File {
        path: PathBuf,
        f32_path: Option<PathBuf>,
    },
    Memory(Vec<f32>),
}

/// The guard's figures: the one the record carries, and the calibration beside it.
#[derive(Clone, Debug, Serialize)]
pub struct QualityFigures {
    /// Reference vs VKAE: what the record's `quality` says.
    pub record: Comparison,
    /// What the reference was.
    pub reference: String,
    /// transformers BF16 scored against transformers f32 on the same weights: what an honest BF16 path achieves.
    pub bf16_vs_f32: Option<Comparison>,
    /// VKAE scored against transformers BF16 (the declared baseline's own numerics).
    pub vkae_vs_bf16: Option<Comparison>,
}

/// The quality phase's arithmetic: VKAE's logits scored against the reference's (the f32 forward where there
/// is one, with the BF16 forward scored beside it as the calibration). `implementation` names the reference.
pub fn score(
    reference: ReferenceLogits,
    implementation: &str,
    vkae: &Logits,
    ids: &[u32],
    vocab: usize,
) -> Result<QualityFigures> {
    Ok(match reference {
        ReferenceLogits::Memory(v) => QualityFigures {
            record: compare(&Logits::Memory(v), vkae, ids, vocab)?,
            reference: implementation.to_string(),
            bf16_vs_f32: None,
            vkae_vs_bf16: None,
        },
        ReferenceLogits::File { path, f32_path } => {
            let bf16 = Logits::map_file(&path, ids.len(), vocab)?;
            let vkae_vs_bf16 = compare(&bf16, vkae, ids, vocab)?;
            match f32_path {
                Some(p) => {
                    let f32 = Logits::map_file(&p, ids.len(), vocab)?;
                    QualityFigures {
                        record: compare(&f32, vkae, ids, vocab)?,
                        reference: "transformers float32 forward of the same BF16 weights".into(),
                        bf16_vs_f32: Some(compare(&f32, &bf16, ids, vocab)?),
                        vkae_vs_bf16: Some(vkae_vs_bf16),
                    }
                }
                None => QualityFigures {
                    record: vkae_vs_bf16,
                    reference: "transformers bfloat16 forward".into(),
                    bf16_vs_f32: None,
                    vkae_vs_bf16: None,
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax(x: &[f64]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    #[test]
    fn identical_sides_agree_fully_with_zero_kl() {
        let vocab = 7;
        let ids = [0u32, 3, 5, 1];
        let v: Vec<f32> = (0..ids.len() * vocab)
            .map(|i| ((i * 37 % 11) as f32) * 0.3)
            .collect();
        let c = compare(&Logits::Memory(v.clone()), &Logits::Memory(v), &ids, vocab).unwrap();
        assert_eq!(c.tokens, 3);
        assert_eq!(c.top1_agreement, 1.0);
        assert!(c.mean_kl < 1e-12, "{}", c.mean_kl);
        assert_eq!(c.reference_ppl, c.candidate_ppl);
    }

    #[test]
    fn matches_a_direct_computation() {
        // Two rows over a vocabulary of 3: hand-checkable perplexity, agreement and KL.
        let r = [1.0f32, 2.0, 0.5, 0.0, 0.0, 3.0, 9.0, 9.0, 9.0];
        let c = [1.5f32, 1.0, 0.5, 0.0, 1.0, 0.0, 9.0, 9.0, 9.0];
        let ids = [0u32, 1, 2];
        let got = compare(
            &Logits::Memory(r.to_vec()),
            &Logits::Memory(c.to_vec()),
            &ids,
            3,
        )
        .unwrap();
        let (mut kl, mut lr, mut lc) = (0.0, 0.0, 0.0);
        for row in 0..2 {
            let pr = softmax(
                &r[row * 3..row * 3 + 3]
                    .iter()
                    .map(|&x| x as f64)
                    .collect::<Vec<_>>(),
            );
            let pc = softmax(
                &c[row * 3..row * 3 + 3]
                    .iter()
                    .map(|&x| x as f64)
                    .collect::<Vec<_>>(),
            );
            kl += (0..3).map(|v| pr[v] * (pr[v] / pc[v]).ln()).sum::<f64>();
            lr += pr[ids[row + 1] as usize].ln();
            lc += pc[ids[row + 1] as usize].ln();
        }
        assert!((got.mean_kl - kl / 2.0).abs() < 1e-12);
        assert!((got.reference_ppl - (-lr / 2.0).exp()).abs() < 1e-9);
        assert!((got.candidate_ppl - (-lc / 2.0).exp()).abs() < 1e-9);
        // Row 0: argmax 1 vs 0 (disagree); row 1: argmax 2 vs 1 (disagree).
        assert_eq!(got.top1_agreement, 0.0);
        assert!(got.max_kl >= got.mean_kl);
    }

    #[test]
    fn nan_logits_are_an_error_not_a_score() {
        let mut c = vec![0.0f32; 6];
        c[1] = f32::NAN;
        let err = compare(
            &Logits::Memory(vec![0.0; 6]),
            &Logits::Memory(c),
            &[0, 1],
            3,
        )
        .unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
    }

    #[test]
    fn a_mapped_file_of_the_wrong_size_is_refused() {
        let dir = std::env::temp_dir().join(format!("vkae-quality-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("short.f32");
        std::fs::write(&p, vec![0u8; 4 * 5]).unwrap();
        let err = Logits::map_file(&p, 2, 3).err().unwrap();
        assert!(err.to_string().contains("expected 2 rows x 3"), "{err}");
        let mut bytes = Vec::new();
        for v in [1.0f32, 2.0, 3.0, 3.0, 2.0, 1.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&p, bytes).unwrap();
        let m = Logits::map_file(&p, 2, 3).unwrap();
        let same = compare(
            &m,
            &Logits::Memory(vec![1.0, 2.0, 3.0, 3.0, 2.0, 1.0]),
            &[0, 2],
            3,
        )
        .unwrap();
        assert_eq!(same.top1_agreement, 1.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
