//! GPU sizing, computed from content: memory arithmetic (weights + KV cache at a stated context and batch +
//! runtime headroom), the minimum and recommended BF16 lane per family, and a planning speed index from the
//! bandwidth roofline. A measured figure replaces the index only where a promoted claim exists for the family
//! and GPU; the caller passes the public claims in, so nothing unpromoted can reach this output.

use crate::content::{Content, Family, Gpu, Scenario};
use vkae_domain::{
    FamilySizing, GpuSpeed, KvLayers, LaneFit, MeasuredSpeed, MemoryLane, PathRole, PlanningIndex,
    PublicClaim, SizingAssumptions, SizingDocument,
};

const GB: f64 = 1e9;

/// Layers that own a KV cache (not KV-shared), split into (sliding, global).
pub fn kv_layers(f: &Family) -> (u32, u32) {
    let own = f.num_hidden_layers - f.num_kv_shared_layers;
    let period = f.sliding_per_full + 1;
    let global = (0..own)
        .filter(|i| (i + 1) % period == 0 || *i == f.num_hidden_layers - 1)
        .count() as u32;
    (own - global, global)
}

/// KV-cache bytes for one sequence of `context` tokens (BF16 K and V; sliding layers capped at the window).
pub fn kv_bytes_per_sequence(f: &Family, context: u32) -> f64 {
    let (sliding, global) = kv_layers(f);
    let per_token_global =
        f64::from(global) * f64::from(f.kv_heads_global) * f64::from(f.head_dim_global) * 2.0 * 2.0;
    let per_token_sliding = f64::from(sliding)
        * f64::from(f.kv_heads_sliding)
        * f64::from(f.head_dim_sliding)
        * 2.0
        * 2.0;
    per_token_global * f64::from(context)
        + per_token_sliding * f64::from(context.min(f.sliding_window))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The memory arithmetic of one scenario and the first lane (smallest count, then catalog order) it fits.
fn lane(content: &Content, f: &Family, scenario: Scenario) -> MemoryLane {
    let context = scenario.context_tokens.min(f.max_context);
    let weights = f.bf16_weights_gb;
    let kv = kv_bytes_per_sequence(f, context) * f64::from(scenario.batch) / GB;
    let needed = weights + kv;
    let h = content.sizing.headroom_fraction;
    let fit = content.sizing.gpu_counts.iter().find_map(|&count| {
        content.gpus.iter().find_map(|g| {
            let usable = g.memory_gb * f64::from(count) * (1.0 - h);
            (needed <= usable).then(|| LaneFit {
                gpu_id: g.id.clone(),
                gpu: g.name.clone(),
                gpu_count: count,
                usable_gb: round2(usable),
            })
        })
    });
    MemoryLane {
        context_tokens: context,
        batch: scenario.batch,
        weights_gb: weights,
        kv_cache_gb: round2(kv),
        needed_gb: round2(needed),
        headroom_fraction: h,
        rule:
            "fits when weights_gb + kv_cache_gb <= gpu_count x memory_gb x (1 - headroom_fraction)"
                .to_string(),
        lane: fit,
    }
}

/// Smallest count of this GPU that holds the minimum scenario.
fn min_count(content: &Content, f: &Family, g: &Gpu) -> Option<u32> {
    let s = content.sizing.minimum;
    let needed = f.bf16_weights_gb
        + kv_bytes_per_sequence(f, s.context_tokens.min(f.max_context)) * f64::from(s.batch) / GB;
    content
        .sizing
        .gpu_counts
        .iter()
        .copied()
        .find(|&c| needed <= g.memory_gb * f64::from(c) * (1.0 - content.sizing.headroom_fraction))
}

/// The newest promoted claim's VKAE figure for family `f` on GPU `g` (claims arrive newest first).
fn measured(claims: &[PublicClaim], f: &Family, g: &Gpu) -> Option<MeasuredSpeed> {
    let c = claims.iter().find(|c| {
        c.figures.model.family == f.slug && c.figures.hardware.gpu_id.as_ref() == Some(&g.id)
    })?;
    let vkae = c.figures.path(PathRole::Vkae)?;
    Some(MeasuredSpeed {
        label: "measured".to_string(),
        tokens_per_s: vkae.tokens_per_s.median,
        run_id: c.figures.run_id.clone(),
        level: c.level,
        batch: c.figures.recipe.batch,
        gpu_count: c.figures.hardware.gpu_count,
    })
}

fn gpu_speed(content: &Content, claims: &[PublicClaim], f: &Family, g: &Gpu) -> GpuSpeed {
    let count = min_count(content, f, g);
    let planning = count.map(|c| PlanningIndex {
        label: "planning".to_string(),
        tokens_per_s: round2(f64::from(c) * g.bandwidth_gb_s / f.decode_gb_per_token),
        basis: format!(
            "batch-1 bandwidth roofline: {c} x {} GB/s / {} GB per token; a ceiling, not a measurement",
            g.bandwidth_gb_s, f.decode_gb_per_token
        ),
    });
    GpuSpeed {
        gpu_id: g.id.clone(),
        gpu: g.name.clone(),
        gpu_count: count,
        fits: count.is_some(),
        planning,
        measured: measured(claims, f, g),
    }
}

/// Sizing for every family (or one). `claims` are public claims (as the public API serves them).
pub fn sizing(content: &Content, claims: &[PublicClaim], family: Option<&str>) -> SizingDocument {
    let families = content
        .catalog
        .families
        .iter()
        .filter(|f| family.is_none_or(|want| want == f.slug.as_str()))
        .map(|f| {
            let (sliding, global) = kv_layers(f);
            FamilySizing {
                family: f.slug.clone(),
                kv_layers: KvLayers { sliding, global },
                kv_bytes_per_token_global: f64::from(global)
                    * f64::from(f.kv_heads_global)
                    * f64::from(f.head_dim_global)
                    * 4.0,
                decode_gb_per_token: f.decode_gb_per_token,
                decode_source: f.decode_source.clone(),
                minimum: lane(content, f, content.sizing.minimum),
                recommended: lane(content, f, content.sizing.recommended),
                speed: content
                    .gpus
                    .iter()
                    .map(|g| gpu_speed(content, claims, f, g))
                    .collect(),
            }
        })
        .collect();
    SizingDocument {
        assumptions: SizingAssumptions {
            precision: "bf16 weights and KV cache".to_string(),
            headroom_fraction: content.sizing.headroom_fraction,
            gpu_counts: content.sizing.gpu_counts.clone(),
            gb: "10^9 bytes".to_string(),
            planning_note: "Planning speed indexes are bandwidth-roofline ceilings, not measurements; a measured figure appears only where a promoted claim exists for that family and GPU.".to_string(),
        },
        families,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        Content::embedded().unwrap()
    }

    #[test]
    fn kv_arithmetic_matches_the_reference_numbers() {
        let c = content();
        // 31B: 80 KiB/token on global layers; sliding capped at 1024 tokens is ~0.84 GB per sequence.
        let f31 = c.family("31B").unwrap();
        let (sliding, global) = kv_layers(f31);
        assert_eq!((sliding, global), (50, 10));
        let global_per_token = f64::from(global) * 4.0 * 512.0 * 4.0;
        assert_eq!(global_per_token, 80.0 * 1024.0);
        let sliding_seq = kv_bytes_per_sequence(f31, 1024) - global_per_token * 1024.0;
        assert!((sliding_seq / GB - 0.84).abs() < 0.01, "{sliding_seq}");
        // E4B: 18 KV-shared layers leave 24 with their own cache: 4 global, 20 sliding.
        assert_eq!(kv_layers(c.family("E4B").unwrap()), (20, 4));
        assert_eq!(kv_layers(c.family("E2B").unwrap()), (12, 3));
    }

    #[test]
    fn lanes_and_planning_index() {
        let c = content();
        let s = sizing(&c, &[], None);
        let fams = &s.families;
        assert_eq!(fams.len(), 5);
        let e4b = fams.iter().find(|f| f.family == "E4B").unwrap();
        assert_eq!(e4b.minimum.lane.as_ref().unwrap().gpu_id, "l4");
        let f31 = fams.iter().find(|f| f.family == "31B").unwrap();
        // 69.9 GB weights + 0.67 GB global KV (8k) + 0.84 GB sliding KV = 71.4 GB <= 80 x 0.9: one 80 GB GPU,
        // the first in catalog order being the A100; at 32k x 8 (+28.2 GB KV) only the 141 GB H200 holds it.
        assert!(
            (f31.minimum.needed_gb - 71.41).abs() < 0.01,
            "{:?}",
            f31.minimum
        );
        let min_lane = f31.minimum.lane.as_ref().unwrap();
        assert_eq!(min_lane.gpu_id, "a100-80gb");
        assert_eq!(min_lane.gpu_count, 1);
        assert_eq!(
            f31.recommended.lane.as_ref().unwrap().gpu_id,
            "h200",
            "{:?}",
            f31.recommended
        );
        let h200 = e4b.speed.iter().find(|g| g.gpu_id == "h200").unwrap();
        let planning = h200.planning.as_ref().unwrap();
        assert_eq!(planning.label, "planning");
        assert!((planning.tokens_per_s - 4800.0 / 9.29).abs() < 0.01);
        assert!(h200.measured.is_none());
    }
}
