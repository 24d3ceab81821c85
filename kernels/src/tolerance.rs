//! Every tolerance the reference checks use, in one place. A check passes when the relative error
//! `||out - ref|| / ||ref||` (2-norms, f64) is finite and at most the tolerance; NaN never passes.

/// Ops computed in f32 from f32 inputs (norms, rope, residual, softcap, GeGLU, gather of exact bf16).
pub const F32_OP: f64 = 1e-5;
/// Ops whose f32 result is rounded to bf16 (the f32 -> bf16 cast): bf16 keeps 8 significant bits.
pub const BF16_ROUNDING: f64 = 4e-3;
/// Ops with bf16 operands (the cuBLAS GEMM on bf16-cast activations, attention over a bf16 cache
/// compared with an f64 reference on the unrounded inputs).
pub const BF16_OPERANDS: f64 = 1e-2;
/// A product of bf16 operands against the f64 product of the same (bf16-exact) operands: only f32
/// accumulation separates them (the weight-streaming GEMV).
pub const F32_ACCUMULATION: f64 = 1e-4;
/// The tensor-core skinny GEMM against the f64 product of the same bf16 operands: f32 accumulation,
/// in an order set by the mma hardware (products added in groups, with k split across warps).
pub const MMA_F32_ACCUMULATION: f64 = 1e-4;
/// Attention over a bf16 cache compared with an f64 reference on the same bf16-rounded K/V: only
/// f32 arithmetic separates them.
pub const ATTENTION_SAME_CACHE: f64 = 1e-5;

/// `||out - reference|| / ||reference||` in f64; NaN if any element of `out` is not finite or the
/// lengths differ.
pub fn relative_error(out: &[f32], reference: &[f64]) -> f64 {
    if out.len() != reference.len() {
        return f64::NAN;
    }
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (&o, &r) in out.iter().zip(reference) {
        if !o.is_finite() {
            return f64::NAN;
        }
        let d = o as f64 - r;
        num += d * d;
        den += r * r;
    }
    if den == 0.0 {
        return if num == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (num / den).sqrt()
}

/// Whether an error passes a tolerance (NaN never does).
pub fn passes(err: f64, tol: f64) -> bool {
    err.is_finite() && err <= tol
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_length_mismatch_never_pass() {
        assert!(!passes(relative_error(&[f32::NAN, 1.0], &[1.0, 1.0]), 1.0));
        assert!(!passes(relative_error(&[1.0], &[1.0, 1.0]), 1.0));
        assert!(!passes(f64::NAN, f64::INFINITY));
    }

    #[test]
    fn relative_error_measures_the_difference() {
        assert_eq!(relative_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        let e = relative_error(&[1.1, 0.0], &[1.0, 0.0]);
        assert!((e - 0.1).abs() < 1e-6);
        assert!(!passes(e, F32_OP));
    }
}
