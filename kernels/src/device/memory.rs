//! Device memory: zeroed allocation, uploads (typed, raw bf16 bytes, tiled), downloads and copies, all on
//! the [`Gpu`]'s one stream.

use super::Gpu;
use crate::error::{shape, DriverContext, Result};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, ValidAsZeroBits};
use half::bf16;

impl Gpu {
    /// A zero-filled device buffer of `len` elements.
    pub fn alloc<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len).ctx(|| {
            format!(
                "allocating {len} elements ({} bytes)",
                len * std::mem::size_of::<T>()
            )
        })
    }

    /// Copies a host slice to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(host).ctx(|| {
            format!(
                "uploading {} elements ({} bytes)",
                host.len(),
                std::mem::size_of_val(host)
            )
        })
    }

    /// A device buffer of `n` elements filled by repeating `chunk` (element `i` is
    /// `chunk[i % chunk.len()]`), built with device-to-device copies: large random test data or
    /// synthetic weights without a host array of the full size.
    pub fn upload_tiled<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        chunk: &[T],
        n: usize,
    ) -> Result<CudaSlice<T>> {
        if chunk.is_empty() {
            return Err(shape("upload_tiled", "the chunk is empty".into()));
        }
        let src = self.upload(chunk)?;
        let mut dst = self.alloc::<T>(n.max(1))?;
        let mut off = 0;
        while off < n {
            let len = chunk.len().min(n - off);
            self.copy(&src.slice(0..len), &mut dst.slice_mut(off..off + len))?;
            off += len;
        }
        Ok(dst)
    }

    /// Copies a host slice into an existing device buffer (which must be at least as long).
    pub fn upload_into<T: DeviceRepr>(
        &self,
        host: &[T],
        dst: &mut impl DevicePtrMut<T>,
    ) -> Result<()> {
        if dst.len() < host.len() {
            return Err(shape(
                "upload_into",
                format!("{} elements into a buffer of {}", host.len(), dst.len()),
            ));
        }
        self.stream
            .memcpy_htod(host, dst)
            .ctx(|| format!("uploading {} elements", host.len()))
    }

    /// Uploads raw little-endian bf16 bytes (e.g. a safetensors tensor's data) as a bf16 buffer.
    pub fn upload_bf16_bytes(&self, bytes: &[u8]) -> Result<CudaSlice<bf16>> {
        if !bytes.len().is_multiple_of(2) {
            return Err(shape(
                "upload_bf16_bytes",
                format!("{} bytes is not a whole number of bf16 values", bytes.len()),
            ));
        }
        let n = bytes.len() / 2;
        let mut dst = self.alloc::<bf16>(n)?;
        {
            // SAFETY: a u8 view of exactly the buffer's bytes.
            let mut view =
                unsafe { dst.transmute_mut::<u8>(bytes.len()) }.expect("byte view fits the buffer");
            self.stream
                .memcpy_htod(bytes, &mut view)
                .ctx(|| format!("uploading {} bf16 bytes", bytes.len()))?;
        }
        Ok(dst)
    }

    /// Copies a device buffer (or view) to a new host vector; synchronizes the stream.
    pub fn download<T: DeviceRepr>(&self, src: &impl DevicePtr<T>) -> Result<Vec<T>> {
        let v = self
            .stream
            .clone_dtoh(src)
            .ctx(|| format!("downloading {} elements", src.len()))?;
        self.synchronize()?;
        Ok(v)
    }

    /// Device-to-device copy of `src` into the front of `dst`.
    pub fn copy<T>(&self, src: &impl DevicePtr<T>, dst: &mut impl DevicePtrMut<T>) -> Result<()> {
        if dst.len() < src.len() {
            return Err(shape(
                "copy",
                format!("{} elements into a buffer of {}", src.len(), dst.len()),
            ));
        }
        self.stream
            .memcpy_dtod(src, dst)
            .ctx(|| format!("copying {} elements device to device", src.len()))
    }
}
