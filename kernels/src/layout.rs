//! The layouts and operand groups the launchers take: a KV cache's geometry, the heads of a fused q|k|v row,
//! a GEMM's shape, a strided operand, the tokens of a batch. Plain data, no device calls.

use cudarc::driver::{DevicePtr, DevicePtrMut};
use half::bf16;

/// Geometry of one layer's KV cache: `k` and `v` each bf16 `[num_seqs, capacity, kv_heads, head_dim]`.
/// Position `p` of sequence `s` lives in slot `p % capacity`: with `capacity` at least the longest
/// context the cache is a plain array; a smaller `capacity` makes it a ring, which is correct as
/// long as every key a query needs is still there, i.e. `capacity >= window + new_tokens - 1` for
/// the largest number of tokens of one sequence appended before one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    pub num_seqs: usize,
    pub capacity: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl KvLayout {
    /// Elements in each of the K and V buffers.
    pub fn elements(&self) -> usize {
        self.num_seqs * self.capacity * self.kv_heads * self.head_dim
    }
}

/// A layer's KV cache, read: the K and V buffers and their [`KvLayout`].
pub struct KvCache<'a, C: DevicePtr<bf16>> {
    pub k: &'a C,
    pub v: &'a C,
    pub layout: KvLayout,
}

impl<'a, C: DevicePtr<bf16>> KvCache<'a, C> {
    pub fn new(k: &'a C, v: &'a C, layout: KvLayout) -> Self {
        Self { k, v, layout }
    }
}

/// A layer's KV cache, written.
pub struct KvCacheMut<'a, C: DevicePtrMut<bf16>> {
    pub k: &'a mut C,
    pub v: &'a mut C,
    pub layout: KvLayout,
}

impl<'a, C: DevicePtrMut<bf16>> KvCacheMut<'a, C> {
    pub fn new(k: &'a mut C, v: &'a mut C, layout: KvLayout) -> Self {
        Self { k, v, layout }
    }
}

/// The tokens of a batch: `count` rows, token `t` of sequence `seq_ids[t]` at position `positions[t]` (both
/// i32 `[count]`), so prefill and decode (each sequence at its own depth) share one form.
pub struct Tokens<'a, P: DevicePtr<i32>> {
    pub seq_ids: &'a P,
    pub positions: &'a P,
    pub count: usize,
}

impl<'a, P: DevicePtr<i32>> Tokens<'a, P> {
    pub fn new(seq_ids: &'a P, positions: &'a P, count: usize) -> Self {
        Self {
            seq_ids,
            positions,
            count,
        }
    }
}

/// An operand read by rows of `stride` elements (row `r` starts at `r * stride`).
pub struct Strided<'a, B> {
    pub buf: &'a B,
    pub stride: usize,
}

impl<'a, B> Strided<'a, B> {
    pub fn new(buf: &'a B, stride: usize) -> Self {
        Self { buf, stride }
    }
}

/// The shape of `y[m, n] = x[m, k] · w[n, k]ᵀ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Where the heads of a fused q|k|v projection output sit in each row (f32 columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QkvLayout {
    pub heads: usize,
    /// Heads written to the cache; 0 for a layer that reads another layer's cache (q only).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Columns per row of the projection output.
    pub row_stride: usize,
    /// First column of the k heads.
    pub k_col: usize,
    /// First column of the v heads (equal to `k_col` when values are the raw keys).
    pub v_col: usize,
}
