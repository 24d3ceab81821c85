//! Choosing the next token: greedy at temperature 0, otherwise temperature and nucleus (top-p) sampling from
//! a per-request ChaCha8 stream, so a request with a seed draws the same tokens every time it runs.

use std::hash::{BuildHasher, Hasher};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A request's sampling settings, already range-checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 is greedy.
    pub temperature: f32,
    /// In (0, 1]: sample from the smallest set of tokens whose probability reaches this.
    pub top_p: f32,
    /// None: a seed from the process's entropy.
    pub seed: Option<u64>,
}

impl SamplingParams {
    pub const GREEDY: SamplingParams = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        seed: None,
    };

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        Sampler {
            params,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.params.is_greedy()
    }

    /// Draws from softmax(logits / temperature) restricted to the top-p nucleus.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let t = self.params.temperature as f64;
        let mx = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, ((l as f64 - mx) / t).exp()))
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        // Highest first; ties by id so the order is a function of the logits alone.
        probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let want = self.params.top_p as f64 * total;
        let mut kept = 0;
        let mut mass = 0.0;
        for p in &probs {
            mass += p.1;
            kept += 1;
            if mass >= want {
                break;
            }
        }
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * mass;
        let mut acc = 0.0;
        for p in &probs[..kept] {
            acc += p.1;
            if u < acc {
                return p.0;
            }
        }
        probs[kept - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_p: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            seed: Some(seed),
        }
    }

    #[test]
    fn a_seed_reproduces_its_draws_and_another_seed_differs() {
        let logits: Vec<f32> = (0..64).map(|i| (i % 7) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = Sampler::new(params(1.0, 1.0, seed));
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Token 3 holds ~0.88 of the mass; with top_p 0.5 it is the whole nucleus.
        let mut logits = vec![0.0f32; 16];
        logits[3] = 5.0;
        let mut s = Sampler::new(params(1.0, 0.5, 1));
        assert!((0..200).all(|_| s.sample(&logits) == 3));
        // With top_p 1 the other tokens are drawn sometimes.
        let mut s = Sampler::new(params(1.0, 1.0, 1));
        assert!((0..200).any(|_| s.sample(&logits) != 3));
    }

    #[test]
    fn frequencies_follow_the_softmax() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut s = Sampler::new(params(1.0, 1.0, 3));
        let ones = (0..20_000).filter(|_| s.sample(&logits) == 1).count();
        let f = ones as f64 / 20_000.0;
        assert!((f - 0.75).abs() < 0.02, "{f}");
        // A low temperature sharpens towards the argmax.
        let mut s = Sampler::new(params(0.05, 1.0, 3));
        assert!((0..2000).all(|_| s.sample(&logits) == 1));
    }
}
