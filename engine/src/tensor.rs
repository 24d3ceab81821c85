//! Host tensors: BF16 or F32 elements, owned or memory-mapped from a safetensors file, read-only.

use memmap2::Mmap;
use std::borrow::Cow;
use std::sync::Arc;

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    BF16,
    F32,
}

/// A read-only buffer of `T`, owned or a window into a memory map (aligned for `T`).
#[derive(Clone)]
pub enum Buf<T: 'static> {
    Owned(Arc<Vec<T>>),
    Mapped {
        map: Arc<Mmap>,
        byte_offset: usize,
        len: usize,
    },
}

impl<T: Copy + 'static> Buf<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            Buf::Owned(v) => v.as_slice(),
            Buf::Mapped {
                map,
                byte_offset,
                len,
            } => {
                let ptr = map[*byte_offset..].as_ptr();
                debug_assert_eq!(ptr as usize % std::mem::align_of::<T>(), 0);
                // SAFETY: the loader only builds Mapped when the window is in bounds and aligned for T, and
                // T is a plain integer/float type for which every bit pattern is valid.
                unsafe { std::slice::from_raw_parts(ptr as *const T, *len) }
            }
        }
    }
}

#[derive(Clone)]
pub enum Data {
    Bf16(Buf<u16>),
    F32(Buf<f32>),
}

/// A host tensor (row-major).
#[derive(Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

#[inline]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Round-to-nearest-even f32 -> bf16 (NaN stays NaN).
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

impl Tensor {
    pub fn from_f32(shape: Vec<usize>, v: Vec<f32>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), v.len());
        Tensor {
            shape,
            data: Data::F32(Buf::Owned(Arc::new(v))),
        }
    }
    pub fn from_bf16(shape: Vec<usize>, v: Vec<u16>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), v.len());
        Tensor {
            shape,
            data: Data::Bf16(Buf::Owned(Arc::new(v))),
        }
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn dtype(&self) -> DType {
        match self.data {
            Data::Bf16(_) => DType::BF16,
            Data::F32(_) => DType::F32,
        }
    }
    pub fn elem_bytes(&self) -> usize {
        match self.data {
            Data::Bf16(_) => 2,
            Data::F32(_) => 4,
        }
    }

    /// Row `r` of a 2-D view `[numel / cols, cols]`, converted to f32 into `out`.
    #[inline]
    pub fn row_into(&self, r: usize, cols: usize, out: &mut [f32]) {
        match &self.data {
            Data::Bf16(b) => {
                let s = &b.as_slice()[r * cols..(r + 1) * cols];
                for (o, &x) in out.iter_mut().zip(s) {
                    *o = bf16_to_f32(x);
                }
            }
            Data::F32(b) => out.copy_from_slice(&b.as_slice()[r * cols..(r + 1) * cols]),
        }
    }

    /// The whole tensor as f32 (a copy for BF16, borrowed for F32).
    pub fn to_f32(&self) -> Cow<'_, [f32]> {
        match &self.data {
            Data::Bf16(b) => Cow::Owned(b.as_slice().iter().map(|&x| bf16_to_f32(x)).collect()),
            Data::F32(b) => Cow::Borrowed(b.as_slice()),
        }
    }

    /// Elements `[start, start+len)` as f32.
    pub fn slice_f32(&self, start: usize, len: usize) -> Vec<f32> {
        let mut out = vec![0.0; len];
        match &self.data {
            Data::Bf16(b) => {
                for (o, &x) in out.iter_mut().zip(&b.as_slice()[start..start + len]) {
                    *o = bf16_to_f32(x);
                }
            }
            Data::F32(b) => out.copy_from_slice(&b.as_slice()[start..start + len]),
        }
        out
    }

    /// The tensor as BF16 bits (a copy, rounding, for F32 tensors).
    pub fn to_bf16(&self) -> Cow<'_, [u16]> {
        match &self.data {
            Data::Bf16(b) => Cow::Borrowed(b.as_slice()),
            Data::F32(b) => Cow::Owned(b.as_slice().iter().map(|&x| f32_to_bf16(x)).collect()),
        }
    }

    /// Raw little-endian bytes (for writing safetensors).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Bf16(b) => {
                let s = b.as_slice();
                // SAFETY: u16 slice reinterpreted as bytes; the platform is little-endian (checked at build).
                unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, s.len() * 2) }
            }
            Data::F32(b) => {
                let s = b.as_slice();
                // SAFETY: as above, for f32.
                unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, s.len() * 4) }
            }
        }
    }
}

#[cfg(not(target_endian = "little"))]
compile_error!(
    "vkae-engine reads safetensors (little-endian) in place: big-endian hosts are not supported"
);
