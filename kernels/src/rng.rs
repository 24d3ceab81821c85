//! A small deterministic generator (SplitMix64) for check and benchmark inputs: no dependency,
//! and a fresh seed per check draws fresh inputs.

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A seed that differs between runs (time and process id), for "fresh random inputs".
    pub fn fresh_seed() -> u64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ ((std::process::id() as u64) << 32)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` normal values times `std`, as f32.
    pub fn normal_vec(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * std) as f32).collect()
    }

    /// `n` weights of a norm, `1 + 0.5 * normal`, rounded to bf16 (near one, as trained norm scales are).
    pub fn norm_weight_bf16(&mut self, n: usize) -> Vec<half::bf16> {
        (0..n)
            .map(|_| half::bf16::from_f64(1.0 + 0.5 * self.normal()))
            .collect()
    }

    /// `n` normal values times `std`, rounded to bf16.
    pub fn normal_bf16(&mut self, n: usize, std: f64) -> Vec<half::bf16> {
        (0..n)
            .map(|_| half::bf16::from_f64(self.normal() * std))
            .collect()
    }
}
