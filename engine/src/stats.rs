//! Counting: parameters, bytes a decode step must stream, KV-cache bytes per token.

use serde::Serialize;

use crate::config::{LayerKind, TextConfig};
use crate::weights::param_specs;

#[derive(Clone, Debug, Serialize)]
pub struct ModelStats {
    pub parameters: u64,
    /// The per-layer-embedding table (read one row per token, not streamed).
    pub ple_table_parameters: u64,
    /// All routed-expert weights (MoE); a token reads only its top-k experts.
    pub expert_parameters: u64,
    /// Parameters a batch-1 decode step reads: everything but the PLE table and the unselected experts
    /// (the tied embedding counts once, as the LM head).
    pub streamed_parameters_per_token: u64,
    /// BF16 bytes a batch-1 decode step streams (`streamed_parameters_per_token * 2` plus one PLE row).
    pub bytes_streamed_per_token: u64,
    /// BF16 K+V bytes one token adds to the cache across all cache-owning layers (no window cap).
    pub kv_bytes_per_token: u64,
    /// Of those, the full-attention layers' share (what keeps growing past the sliding window).
    pub kv_bytes_per_token_full_layers: u64,
    /// Sliding layers' cache per sequence once it is full (capped at the window), bytes.
    pub kv_bytes_sliding_cap: u64,
}

pub fn model_stats(cfg: &TextConfig) -> ModelStats {
    let specs = param_specs(cfg);
    let n = |shape: &[usize]| shape.iter().product::<usize>() as u64;
    let parameters: u64 = specs.iter().map(|s| n(&s.shape)).sum();
    let ple_table_parameters: u64 = specs
        .iter()
        .filter(|s| s.name == "embed_tokens_per_layer.weight")
        .map(|s| n(&s.shape))
        .sum();
    let expert_parameters: u64 = specs
        .iter()
        .filter(|s| s.name.contains(".experts."))
        .map(|s| n(&s.shape))
        .sum();
    let active_experts = if cfg.enable_moe_block {
        expert_parameters / cfg.num_experts as u64 * cfg.top_k_experts as u64
    } else {
        0
    };
    let streamed = parameters - ple_table_parameters - expert_parameters + active_experts;
    let (mut kv, mut kv_full, mut kv_sliding_cap) = (0u64, 0u64, 0u64);
    for l in cfg.layers().iter().filter(|l| l.kv_source.is_none()) {
        let b = 2 * (l.kv_heads * l.head_dim) as u64 * 2;
        kv += b;
        match l.kind {
            LayerKind::Full => kv_full += b,
            LayerKind::Sliding => kv_sliding_cap += b * cfg.sliding_window as u64,
        }
    }
    ModelStats {
        parameters,
        ple_table_parameters,
        expert_parameters,
        streamed_parameters_per_token: streamed,
        bytes_streamed_per_token: 2 * streamed + ple_row_bytes(cfg),
        kv_bytes_per_token: kv,
        kv_bytes_per_token_full_layers: kv_full,
        kv_bytes_sliding_cap: kv_sliding_cap,
    }
}

/// BF16 bytes of one token's per-layer-input row (E-models; 0 elsewhere).
fn ple_row_bytes(cfg: &TextConfig) -> u64 {
    2 * (cfg.num_hidden_layers * cfg.hidden_size_per_layer_input) as u64
}

/// Bytes a decode step of `batch` sequences streams, each at a context of `depth` cached positions: the
/// weights once (everything but the PLE table and the unselected experts), each sequence's PLE row, and the
/// KV entries its attention reads (sliding layers capped at the window). At batch 1 and depth 0 this is
/// [`ModelStats::bytes_streamed_per_token`].
pub fn bytes_per_step(cfg: &TextConfig, batch: usize, depth: f64) -> f64 {
    let st = model_stats(cfg);
    let ple_row = ple_row_bytes(cfg);
    let weights = (st.bytes_streamed_per_token - ple_row) as f64;
    let mut kv = 0.0;
    for l in cfg.layers().iter().filter(|l| l.kv_source.is_none()) {
        let per_token = (2 * l.kv_heads * l.head_dim * 2) as f64;
        let seen = match l.kind {
            LayerKind::Sliding => depth.min(cfg.sliding_window as f64),
            LayerKind::Full => depth,
        };
        kv += per_token * seen;
    }
    weights + batch as f64 * (ple_row as f64 + kv)
}

/// The mean context of the timed decode steps of a `prompt_len` prompt generating `max_new` tokens.
pub fn mean_decode_depth(prompt_len: usize, max_new: usize) -> f64 {
    prompt_len as f64 + max_new as f64 / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Family;

    #[test]
    fn e4b_counts_match_the_reference() {
        // gemma4.md: 7.463B parameters, 2.819B of them the PLE table, ~9.29 GB streamed per step.
        let s = model_stats(&Family::E4B.config());
        assert_eq!(s.parameters / 1_000_000, 7_463, "{s:?}");
        assert_eq!(s.ple_table_parameters / 1_000_000, 2_818, "{s:?}");
        assert_eq!(s.bytes_streamed_per_token / 10_000_000, 928, "{s:?}");
    }

    #[test]
    fn one_step_at_no_depth_streams_the_per_token_bytes() {
        for f in [Family::E4B, Family::B31] {
            let cfg = f.config();
            let s = model_stats(&cfg);
            assert_eq!(
                bytes_per_step(&cfg, 1, 0.0),
                s.bytes_streamed_per_token as f64
            );
            assert!(bytes_per_step(&cfg, 1, 100.0) > s.bytes_streamed_per_token as f64);
        }
    }

    #[test]
    fn b31_global_kv_is_80_kib_per_token() {
        // gemma4.md: 31B global layers 80 KiB/token in total (10 global layers x 2 x 4 heads x 512 x 2 B).
        let s = model_stats(&Family::B31.config());
        assert_eq!(s.kv_bytes_per_token_full_layers, 80 * 1024);
    }
}
