//! The reference-check suites at test sizes: every op family's check, as the GPU tests and the benchmark run
//! them.

use crate::check::{CheckReport, Checker};
use crate::error::Result;
use crate::layout::GemmShape;
use crate::matmul::StreamingKernel;
use crate::ops::attention::AttentionCase;
use crate::rope::Rope;

impl Checker<'_> {
    /// The whole suite at test sizes (small enough for a quick run, large enough to cover
    /// multi-block rows, E4B head dims, GQA, windows, rings and ragged batches).
    pub fn suite(&mut self) -> Result<Vec<CheckReport>> {
        let mut r = vec![
            self.embed(7, 2560, 1000)?,
            self.embed(5, 100, 50)?,
            self.rms_norm(9, 2560, true, false)?,
            self.rms_norm(9, 2560, false, false)?,
            self.rms_norm(33, 256, true, true)?,
            self.rms_norm(4, 100, false, true)?,
            self.rope(
                5,
                8,
                Rope::Default {
                    theta: 1e4,
                    head_dim: 256,
                },
                131072,
            )?,
            self.rope(
                5,
                2,
                Rope::Proportional {
                    theta: 1e6,
                    partial_rotary_factor: 0.25,
                    head_dim: 512,
                },
                131072,
            )?,
            self.rope(
                3,
                4,
                Rope::Default {
                    theta: 1e4,
                    head_dim: 64,
                },
                4096,
            )?,
            self.kv_append(3, 5, 2, 256)?,
            self.kv_append(2, 4, 1, 48)?,
        ];
        let base = AttentionCase::DECODE;
        for c in [
            base, // decode, full
            AttentionCase {
                bf16_out: true,
                ..base
            }, // bf16 output (split partials merged by the combine)
            AttentionCase {
                head_dim: 512,
                ..base
            }, // global head dim
            AttentionCase {
                context: 0,
                new_tokens: 17,
                ..base
            }, // prefill from empty
            AttentionCase {
                context: 20,
                new_tokens: 9,
                window: Some(8),
                ..base
            }, // prefill chunk, window
            AttentionCase {
                context: 300,
                window: Some(16),
                capacity: 16,
                ..base
            }, // decode, ring = window
            AttentionCase {
                context: 100,
                new_tokens: 4,
                window: Some(32),
                capacity: 35,
                ..base
            }, // ring, 4 new
            AttentionCase {
                heads: 4,
                kv_heads: 1,
                head_dim: 40,
                context: 10,
                new_tokens: 3,
                ..base
            }, // odd small hd
            AttentionCase {
                num_seqs: 1,
                context: 3,
                ..base
            }, // more splits than keys
            AttentionCase {
                num_seqs: 1,
                context: 150,
                capacity: 160,
                max_keys: Some(151),
                ..base
            }, // splits from the context: 3
            AttentionCase {
                context: 100,
                window: Some(32),
                capacity: 35,
                max_keys: Some(32),
                ..base
            }, // one split (no combine), ring
        ] {
            r.push(self.attention(c)?);
        }
        for c in Self::attention_path_cases() {
            r.push(self.attention(c)?);
        }
        r.push(self.geglu(5, 10240, false)?);
        r.push(self.geglu(3, 1000, true)?);
        r.extend(self.residual(100_003)?);
        r.push(self.softcap(100_003)?);
        r.push(self.argmax(4, 262_144)?);
        r.push(self.argmax(3, 1000)?);
        r.extend(self.casts(100_003)?);
        r.push(self.linear(3, 512, 2560, None)?);
        r.push(self.linear(8, 2048, 2560, None)?);
        r.push(self.linear(1, 1000, 100, None)?);
        Ok(r)
    }

    /// Every fused-kernel check at test sizes (E4B head dims, GQA, rings, k = v, shared KV, odd sizes).
    pub fn fused_suite(&mut self) -> Result<Vec<CheckReport>> {
        let mut r = vec![];
        r.extend(self.residual_rms_norm(5, 2560, true)?);
        r.extend(self.residual_rms_norm(3, 100, false)?);
        let sliding = Rope::Default {
            theta: 1e4,
            head_dim: 256,
        };
        let global = Rope::Proportional {
            theta: 1e6,
            partial_rotary_factor: 0.25,
            head_dim: 512,
        };
        r.extend(self.qk_norm_rope_kv(6, 8, 2, sliding, Some(true), 5)?);
        r.extend(self.qk_norm_rope_kv(3, 8, 2, global, Some(false), 7)?);
        r.extend(self.qk_norm_rope_kv(4, 8, 2, sliding, None, 4)?);
        r.extend(self.qk_norm_rope_kv(
            5,
            4,
            1,
            Rope::Default {
                theta: 1e4,
                head_dim: 40,
            },
            Some(true),
            9,
        )?);
        r.push(self.ple_combine(3, 42, 256, 50)?);
        r.push(self.ple_combine(2, 3, 24, 10)?);
        r.extend(self.softcap_argmax(3, 262_144)?);
        r.extend(self.softcap_argmax(2, 1000)?);
        r.push(self.geglu_to_bf16(3, 10240)?);
        for (m, n, k) in [
            (1, 512, 2560),
            (3, 2048, 2560),
            (8, 2560, 10240),
            (5, 37, 64),
            (2, 256, 2560),
        ] {
            r.push(self.weight_streaming(
                StreamingKernel::Gemv,
                GemmShape { m, n, k },
                None,
                None,
            )?);
        }
        r.push(self.weight_streaming(
            StreamingKernel::Gemv,
            GemmShape {
                m: 1,
                n: 262_144,
                k: 2560,
            },
            None,
            Some(64),
        )?);
        for kparts in [1, 2, 4, 8] {
            r.push(self.weight_streaming(
                StreamingKernel::Gemv,
                GemmShape {
                    m: 1,
                    n: 2560,
                    k: 10240,
                },
                Some(kparts),
                None,
            )?);
            r.push(self.weight_streaming(
                StreamingKernel::Gemv,
                GemmShape {
                    m: 7,
                    n: 300,
                    k: 2048,
                },
                Some(kparts),
                None,
            )?);
        }
        // GeGLU epilogues: the E4B MLP (10240 of [gate; up] 20480 x 2560) and per-layer-input gate (256 x 2560),
        // plus ragged shapes whose last warp runs past the end.
        for (m, n, k, kparts, halves) in [
            (1, 10240, 2560, 1, true),
            (8, 10240, 2560, 1, true),
            (3, 37, 64, 8, true),
            (1, 256, 2560, 8, false),
            (5, 256, 2560, 8, false),
            (2, 45, 96, 2, false),
        ] {
            r.push(self.gemv_geglu(m, n, k, kparts, halves)?);
        }
        r.push(self.decode_advance(5)?);
        Ok(r)
    }
}
