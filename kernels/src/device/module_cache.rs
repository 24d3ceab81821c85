//! An on-disk cache of the cubins NVRTC compiles, so that only the first process on a machine pays for them.
//!
//! Every [`crate::Gpu`] compiles every module for its device (seconds for all of them), and a test
//! run or a qualification opens several. A cubin is stored under a key that is the SHA-256 of what decides it:
//! the module's name and full text (`common.cuh` + its `.cu` file), the target architecture, the NVRTC options
//! and the NVRTC version (major.minor, all NVRTC reports). Changing any of those misses the cache, so a cached
//! module is a compile of exactly those sources and [`crate::kernels_sha256`] keeps naming the code that runs.
//! (Two patch releases of one NVRTC minor version share keys; their cubins may differ in code generation, never
//! in the sources they compile.)
//!
//! Where: `$VKAE_KERNEL_CACHE` (a directory; `off` turns the cache off), else `$XDG_CACHE_HOME/vkae/kernels`,
//! else `$HOME/.cache/vkae/kernels`. The cache is best effort: a directory that cannot be created or written,
//! or an entry that cannot be read, only means compiling again. An entry is the cubin followed by its SHA-256,
//! written to a temporary file, flushed to disk and renamed into place; `get` returns only an ELF image whose
//! digest matches, so a truncated or damaged entry is never handed to the driver (which takes no length). A
//! cubin the driver still refuses is compiled again and replaced ([`crate::Gpu::with_device`]).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::device::sources::{nvrtc_options, KernelSource};

/// Where compiled modules are kept (or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleCache {
    dir: Option<PathBuf>,
}

impl ModuleCache {
    /// The cache the environment asks for (see the module docs).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = match var("VKAE_KERNEL_CACHE") {
            Some(v) if v == "off" => None,
            Some(v) => Some(PathBuf::from(v)),
            None => var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|base| base.join("vkae").join("kernels")),
        };
        Self { dir }
    }

    /// A cache in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// No cache: every module is compiled.
    pub fn off() -> Self {
        Self { dir: None }
    }

    /// The directory, if the cache is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file a module's cubin for `arch` is kept in, compiled by NVRTC `nvrtc_version`.
    fn entry(
        &self,
        source: &KernelSource,
        arch: &str,
        nvrtc_version: (i32, i32),
    ) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!(
            "{}-{}.cubin",
            source.name,
            entry_key(source, arch, nvrtc_version)
        )))
    }

    /// The cached cubin of `source` for `arch`, if there is an intact one.
    pub fn get(
        &self,
        source: &KernelSource,
        arch: &str,
        nvrtc_version: (i32, i32),
    ) -> Option<Vec<u8>> {
        let path = self.entry(source, arch, nvrtc_version)?;
        let mut bytes = std::fs::read(path).ok()?;
        let body = bytes.len().checked_sub(DIGEST_LEN)?;
        let intact = bytes[..body].starts_with(ELF_MAGIC)
            && Sha256::digest(&bytes[..body]).as_slice() == &bytes[body..];
        intact.then(|| {
            bytes.truncate(body);
            bytes
        })
    }

    /// Keeps `cubin` as `source`'s module for `arch`; returns whether it was written (failures are not errors:
    /// the next process compiles again).
    pub fn put(
        &self,
        source: &KernelSource,
        arch: &str,
        nvrtc_version: (i32, i32),
        cubin: &[u8],
    ) -> bool {
        let Some(path) = self.entry(source, arch, nvrtc_version) else {
            return false;
        };
        let Some(dir) = path.parent() else {
            return false;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return false;
        }
        // Unique per process and call, so concurrent writers never share a temporary file.
        let tmp = dir.join(format!(
            ".{}.{}.{:?}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            std::process::id(),
            std::thread::current().id()
        ));
        let written = (|| {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(cubin)?;
            f.write_all(&Sha256::digest(cubin))?;
            // On disk before the rename, so a crash leaves the old entry or the whole new one.
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.is_ok()
    }
}

/// A cubin is an ELF image.
const ELF_MAGIC: &[u8] = b"\x7fELF";
/// An entry's trailer: the SHA-256 of the cubin before it.
const DIGEST_LEN: usize = 32;

/// The cache key of `source` compiled for `arch` by NVRTC `nvrtc_version` (hex SHA-256).
pub fn entry_key(source: &KernelSource, arch: &str, nvrtc_version: (i32, i32)) -> String {
    let mut h = Sha256::new();
    for part in [
        source.name.as_bytes(),
        source.full_text().as_bytes(),
        arch.as_bytes(),
        nvrtc_options(arch).join(" ").as_bytes(),
        format!("nvrtc {}.{}", nvrtc_version.0, nvrtc_version.1).as_bytes(),
    ] {
        h.update(part);
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::sources::SOURCES;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vkae-module-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_key_changes_with_everything_that_decides_the_cubin() {
        let (a, b) = (&SOURCES[0], &SOURCES[1]);
        let k = entry_key(a, "sm_90", (13, 0));
        assert_eq!(k.len(), 64);
        assert_eq!(k, entry_key(a, "sm_90", (13, 0)));
        assert_ne!(k, entry_key(b, "sm_90", (13, 0)), "another module");
        assert_ne!(k, entry_key(a, "sm_100", (13, 0)), "another architecture");
        assert_ne!(k, entry_key(a, "sm_90", (13, 1)), "another NVRTC");
        let edited = KernelSource {
            source: "// an edit\n",
            ..*a
        };
        assert_ne!(k, entry_key(&edited, "sm_90", (13, 0)), "other text");
    }

    #[test]
    fn a_stored_module_comes_back_and_only_for_its_key() {
        let dir = scratch_dir("roundtrip");
        let cache = ModuleCache::at(&dir);
        let s = &SOURCES[0];
        assert_eq!(cache.get(s, "sm_90", (13, 0)), None, "empty at first");
        assert!(cache.put(s, "sm_90", (13, 0), b"\x7fELF cubin bytes"));
        assert_eq!(
            cache.get(s, "sm_90", (13, 0)).as_deref(),
            Some(&b"\x7fELF cubin bytes"[..])
        );
        assert_eq!(cache.get(s, "sm_90", (12, 9)), None, "another NVRTC misses");
        assert_eq!(
            cache.get(&SOURCES[1], "sm_90", (13, 0)),
            None,
            "another module misses"
        );
        // A second write replaces the entry whole; no temporary file is left behind.
        assert!(cache.put(s, "sm_90", (13, 0), b"\x7fELF newer"));
        assert_eq!(
            cache.get(s, "sm_90", (13, 0)).as_deref(),
            Some(&b"\x7fELF newer"[..])
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with(&format!("{}-", s.name)) && names[0].ends_with(".cubin"));
        // A damaged or truncated entry, or one that is not an ELF image, is a miss, never handed to the driver.
        let entry = dir.join(&names[0]);
        let whole = std::fs::read(&entry).unwrap();
        let mut flipped = whole.clone();
        flipped[6] ^= 1;
        for bad in [
            &whole[..whole.len() - 1],
            &flipped[..],
            &whole[..3],
            &b"not a cubin"[..],
        ] {
            std::fs::write(&entry, bad).unwrap();
            assert_eq!(cache.get(s, "sm_90", (13, 0)), None, "{bad:?}");
        }
        assert!(cache.put(s, "sm_90", (13, 0), b"not ELF"));
        assert_eq!(cache.get(s, "sm_90", (13, 0)), None, "not an ELF image");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A real cubin (where the NVRTC library is present; no GPU needed) comes back byte for byte.
    #[test]
    fn a_compiled_cubin_comes_back_whole() {
        if !crate::device::sources::nvrtc_or_skip("a_compiled_cubin_comes_back_whole") {
            return;
        }
        let s = SOURCES.iter().find(|s| s.name == "rms_norm").unwrap();
        let version = crate::device::sources::nvrtc_version().unwrap();
        let crate::device::sources::CompiledModule::Cubin(cubin) =
            crate::device::sources::compile(s, "sm_90").unwrap()
        else {
            panic!("sm_90 gives a cubin");
        };
        let dir = scratch_dir("real");
        let cache = ModuleCache::at(&dir);
        assert!(cache.put(s, "sm_90", version, &cubin));
        assert_eq!(cache.get(s, "sm_90", version), Some(cubin));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unusable_cache_only_means_compiling_again() {
        // A regular file where the directory should be: nothing can be created under it.
        let blocker = scratch_dir("blocked");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let cache = ModuleCache::at(blocker.join("kernels"));
        assert!(!cache.put(&SOURCES[0], "sm_90", (13, 0), b"x"));
        assert_eq!(cache.get(&SOURCES[0], "sm_90", (13, 0)), None);
        let _ = std::fs::remove_file(&blocker);
        let off = ModuleCache::off();
        assert!(!off.put(&SOURCES[0], "sm_90", (13, 0), b"x"));
        assert_eq!(off.get(&SOURCES[0], "sm_90", (13, 0)), None);
        assert_eq!(off.dir(), None);
    }
}
