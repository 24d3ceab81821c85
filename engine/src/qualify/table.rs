//! The terminal table of one record: tokens/s median [min, max] per path, achieved GB/s, the ratio to the
//! declared baseline, tokens, and the quality guard's figures.

use vkae_record::stats::{median, spread};
use vkae_record::{Role, RunRecord};

use super::quality::{Comparison, QualityFigures};

/// The final table of one record: tokens/s median [min, max] per path, achieved GB/s, tokens, quality.
pub fn render_table(rec: &RunRecord, bytes_per_token: u64, figures: &QualityFigures) -> String {
    let q = &figures.record;
    use std::fmt::Write as _;
    let mut t = String::new();
    let r = &rec.recipe;
    let _ = writeln!(
        t,
        "{} | {} {} ({}) on {} (driver {}, CUDA {}) | batch {}, prompt {}, output {}, {} | run {}",
        rec.model.family,
        rec.model.repo,
        rec.model.weights,
        rec.recipe.precision,
        rec.hardware.gpu,
        rec.hardware.driver,
        rec.hardware.cuda,
        r.batch,
        r.prompt_tokens,
        r.output_tokens,
        rec.paths
            .first()
            .map(|p| format!("{} timed reps", p.tokens_per_s.len()))
            .unwrap_or_default(),
        rec.run_id
    );
    let _ = writeln!(
        t,
        "{:<32} {:<9} {:>10} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8}",
        "path", "role", "tok/s med", "min", "max", "spread", "GB/s", "vs base", "tokens"
    );
    let base = rec
        .paths
        .iter()
        .find(|p| p.role == Role::Baseline)
        .and_then(|p| median(&p.tokens_per_s));
    for p in &rec.paths {
        let med = median(&p.tokens_per_s).unwrap_or(f64::NAN);
        let lo = p.tokens_per_s.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = p.tokens_per_s.iter().cloned().fold(0.0, f64::max);
        // A decode step streams the weights once for the whole batch: bytes/token x steps/s.
        let gbs = bytes_per_token as f64 * med / r.batch as f64 / 1e9;
        let ratio = base.map(|b| format!("{:.2}x", med / b)).unwrap_or_default();
        let _ = writeln!(
            t,
            "{:<32} {:<9} {:>10.2} {:>10.2} {:>10.2} {:>6.1}% {:>8} {:>8} {:>8}",
            p.name,
            if p.gates() {
                p.role.as_str().to_string()
            } else {
                format!("{}*", p.role.as_str())
            },
            med,
            lo,
            hi,
            spread(&p.tokens_per_s).unwrap_or(f64::NAN) * 100.0,
            if gbs >= 10.0 {
                format!("{gbs:.0}")
            } else {
                format!("{gbs:.3}")
            },
            ratio,
            p.tokens_generated
        );
    }
    if rec.paths.iter().any(|p| !p.gates()) {
        let _ = writeln!(
            t,
            "  * context only: reported with its spread, gates no claim"
        );
    }
    for u in &rec.unavailable_paths {
        let _ = writeln!(
            t,
            "{:<32} {:<9} unavailable: {}",
            u.name,
            u.role.as_str(),
            u.reason
        );
    }
    let _ = writeln!(
        t,
        "quality ({} tokens, teacher-forced): reference ppl {:.4}, vkae ppl {:.4} (relative {:.4}%), top-1 agreement {:.4}, mean KL {:.3e} (max {:.3e})",
        q.tokens,
        q.reference_ppl,
        q.candidate_ppl,
        q.ppl_relative() * 100.0,
        q.top1_agreement,
        q.mean_kl,
        q.max_kl
    );
    let _ = writeln!(t, "  (reference: {})", figures.reference);
    let line = |name: &str, c: &Comparison| {
        format!(
            "  {name}: ppl {:.4} vs {:.4} (relative {:.4}%), top-1 {:.4}, mean KL {:.3e} (max {:.3e})\n",
            c.candidate_ppl,
            c.reference_ppl,
            c.ppl_relative() * 100.0,
            c.top1_agreement,
            c.mean_kl,
            c.max_kl
        )
    };
    if let Some(c) = &figures.bf16_vs_f32 {
        t.push_str(&line(
            "calibration, transformers bf16 vs f32 (an honest BF16 path)",
            c,
        ));
    }
    if let Some(c) = &figures.vkae_vs_bf16 {
        t.push_str(&line("vkae vs transformers bf16", c));
    }
    let _ = writeln!(
        t,
        "bytes streamed per decode step: {:.3} GB (BF16 weights a step reads once for the whole batch); signed by lane key {:?}",
        bytes_per_token as f64 / 1e9,
        rec.lane_key
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_every_path_the_unavailable_ones_and_the_quality() {
        let (key, _) = vkae_record::keygen();
        let mut rec = RunRecord::parse(vkae_record::SAMPLE_RECORD.as_bytes()).unwrap();
        rec.sign("lab", &key).unwrap();
        let c = Comparison {
            tokens: 2048,
            reference_ppl: 100.0,
            candidate_ppl: 101.0,
            top1_agreement: 0.5,
            mean_kl: 0.25,
            max_kl: 1.0,
        };
        let figures = QualityFigures {
            record: c.clone(),
            reference: "f32".into(),
            bf16_vs_f32: Some(c),
            vkae_vs_bf16: None,
        };
        let t = render_table(&rec, 9_289_000_000, &figures);
        // Sample: baseline median 9.76, VKAE median 301.2 at batch 1: 30.86x, 9.289 GB x 301.2 / s = 2798 GB/s.
        assert!(t.contains("30.86x"), "{t}");
        assert!(t.contains("2798"), "{t}");
        assert!(
            t.contains("torch-compile") && t.contains("unavailable"),
            "{t}"
        );
        assert!(
            t.contains("relative 1.0000%") && t.contains("honest BF16"),
            "{t}"
        );
    }
}
