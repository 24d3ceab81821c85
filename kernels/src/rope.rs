//! Rotary-embedding frequencies, as transformers computes them for Gemma 4.

/// Which rope a layer uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rope {
    /// Full rotary ("default"): `inv_freq[i] = theta^(-2i / head_dim)` for `i < head_dim / 2`.
    /// Gemma 4 sliding layers: theta 1e4, head_dim 256.
    Default { theta: f64, head_dim: usize },
    /// "proportional" rope (Gemma 4 full-attention layers: theta 1e6, partial_rotary_factor 0.25,
    /// head_dim 512): `rope_angles = floor(factor * head_dim / 2)`; for `i < rope_angles`
    /// `inv_freq[i] = theta^(-2i / head_dim)` (the exponent's denominator is the whole head_dim),
    /// and the remaining `head_dim / 2 - rope_angles` entries are 0, so with rotate_half the
    /// rotated dims are `0..rope_angles` and `head_dim/2 .. head_dim/2 + rope_angles`.
    Proportional {
        theta: f64,
        partial_rotary_factor: f64,
        head_dim: usize,
    },
}

impl Rope {
    /// The head dim this rope applies to.
    pub fn head_dim(&self) -> usize {
        match *self {
            Rope::Default { head_dim, .. } | Rope::Proportional { head_dim, .. } => head_dim,
        }
    }

    /// `inv_freq`, `head_dim / 2` entries (f64 arithmetic, rounded to f32 as the kernel takes them).
    pub fn inv_freq(&self) -> Vec<f32> {
        let hd = self.head_dim();
        let half = hd / 2;
        let (theta, angles) = match *self {
            Rope::Default { theta, .. } => (theta, half),
            Rope::Proportional {
                theta,
                partial_rotary_factor,
                ..
            } => (
                theta,
                ((partial_rotary_factor * hd as f64) / 2.0).floor() as usize,
            ),
        };
        (0..half)
            .map(|i| {
                if i < angles {
                    (1.0 / theta.powf((2 * i) as f64 / hd as f64)) as f32
                } else {
                    0.0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rope_frequencies() {
        let f = Rope::Default {
            theta: 1e4,
            head_dim: 256,
        }
        .inv_freq();
        assert_eq!(f.len(), 128);
        assert_eq!(f[0], 1.0);
        assert!((f[1] as f64 - 1e4f64.powf(-2.0 / 256.0)).abs() < 1e-7);
        assert!(f.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn proportional_rope_rotates_a_quarter_with_full_head_dim_exponent() {
        let f = Rope::Proportional {
            theta: 1e6,
            partial_rotary_factor: 0.25,
            head_dim: 512,
        }
        .inv_freq();
        assert_eq!(f.len(), 256);
        assert_eq!(f.iter().filter(|&&x| x != 0.0).count(), 64);
        assert!(f[64..].iter().all(|&x| x == 0.0));
        // Exponent over the whole head_dim (512), not over the 128 rotary dims.
        assert!((f[63] as f64 - 1e6f64.powf(-126.0 / 512.0)).abs() < 1e-7);
    }
}
