//! The scratch arena: buffers (and other state) that ops keep between calls, each in a slot the op names.
//! The arena knows no op: an op asks for its slot by name and type, and grows a buffer to what it needs.
//! Buffers only grow, so a size reserved up front ([`crate::ScratchLimits`]) keeps every later pointer valid
//! (a captured CUDA graph replays them).

use crate::error::{DriverContext, Result};
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Named slots of any `Send + Sync` type, created on first use; buffers are allocated on `stream`.
pub(crate) struct ScratchArena {
    stream: Arc<CudaStream>,
    slots: Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

/// One growable device buffer of a slot.
pub(crate) type Buffer<T> = Mutex<Option<CudaSlice<T>>>;

impl ScratchArena {
    pub(crate) fn new(stream: Arc<CudaStream>) -> Self {
        Self {
            stream,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The value in slot `name`, made by `init` on first use. A slot holds one type: asking for another
    /// under the same name is a bug in this crate and panics.
    pub(crate) fn shared<V: Any + Send + Sync>(
        &self,
        name: &'static str,
        init: impl FnOnce() -> V,
    ) -> Arc<V> {
        let mut slots = self.slots.lock().expect("scratch lock");
        let slot = slots
            .entry(name)
            .or_insert_with(|| Arc::new(init()) as Arc<dyn Any + Send + Sync>)
            .clone();
        slot.downcast::<V>()
            .unwrap_or_else(|_| panic!("scratch slot {name} holds another type"))
    }

    /// The device buffer of slot `name`.
    pub(crate) fn buffer<T>(&self, name: &'static str) -> Arc<Buffer<T>>
    where
        T: DeviceRepr + Send + Sync + 'static,
    {
        self.shared(name, || Mutex::new(None))
    }
}

/// A locked scratch buffer of at least the length asked for ([`ScratchArena::grown`]).
pub(crate) struct Grown<'s, T>(MutexGuard<'s, Option<CudaSlice<T>>>);

impl<T> std::ops::Deref for Grown<'_, T> {
    type Target = CudaSlice<T>;
    fn deref(&self) -> &CudaSlice<T> {
        self.0.as_ref().expect("grown on lock")
    }
}

impl<T> std::ops::DerefMut for Grown<'_, T> {
    fn deref_mut(&mut self) -> &mut CudaSlice<T> {
        self.0.as_mut().expect("grown on lock")
    }
}

impl ScratchArena {
    /// Locks `slot` (from [`ScratchArena::buffer`]) and grows it, zero-filled, to at least `len` elements
    /// (and at least 1).
    pub(crate) fn grown<'s, T>(&self, slot: &'s Buffer<T>, len: usize) -> Result<Grown<'s, T>>
    where
        T: DeviceRepr + ValidAsZeroBits,
    {
        let mut guard = slot.lock().expect("scratch lock");
        let len = len.max(1);
        if guard.as_ref().is_none_or(|b| b.len() < len) {
            let buffer = self.stream.alloc_zeros::<T>(len).ctx(|| {
                format!(
                    "allocating {len} scratch elements ({} bytes)",
                    len * std::mem::size_of::<T>()
                )
            })?;
            *guard = Some(buffer);
        }
        Ok(Grown(guard))
    }

    /// Grows scratch buffer `name` to at least `len` elements now (nothing for `len == 0`).
    pub(crate) fn reserve<T>(&self, name: &'static str, len: usize) -> Result<()>
    where
        T: DeviceRepr + ValidAsZeroBits + Send + Sync + 'static,
    {
        if len > 0 {
            self.grown(&self.buffer::<T>(name), len)?;
        }
        Ok(())
    }
}
