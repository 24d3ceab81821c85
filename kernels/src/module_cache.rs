//! An on-disk cache of the cubins NVRTC compiles, so that only the first process on a machine pays for them.
//!
//! Every [`crate::Gpu`] compiles every module for its device (about 8 s for all of them on the H200), and a test
//! run or a qualification opens several. A cubin is stored under a key that is the SHA-256 of everything that
//! decides its bytes: the module's name and full text (`common.cuh` + its `.cu` file), the target architecture,
//! the NVRTC options and the NVRTC version. Changing any of those misses the cache, so a cached module is always
//! what compiling the same sources would give, and [`crate::kernels_sha256`] keeps naming the code that runs.
//!
//! Where: `$VKAE_KERNEL_CACHE` (a directory; `off` turns the cache off), else `$XDG_CACHE_HOME/vkae/kernels`,
//! else `$HOME/.cache/vkae/kernels`. The cache is best effort: a directory that cannot be created or written,
//! or an entry that cannot be read, only means compiling again; entries are written to a temporary file and
//! renamed into place, so a reader never sees half of one. A cached cubin the driver refuses is compiled again
//! and replaced ([`crate::Gpu::with_device`]).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sources::{nvrtc_options, KernelSource};

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

    /// The cached cubin of `source` for `arch`, if there is one.
    pub fn get(
        &self,
        source: &KernelSource,
        arch: &str,
        nvrtc_version: (i32, i32),
    ) -> Option<Vec<u8>> {
        let path = self.entry(source, arch, nvrtc_version)?;
        std::fs::read(path).ok().filter(|bytes| !bytes.is_empty())
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
        let written = std::fs::write(&tmp, cubin).and_then(|_| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.is_ok()
    }
}

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
    use crate::sources::SOURCES;

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
        assert!(cache.put(s, "sm_90", (13, 0), b"cubin bytes"));
        assert_eq!(
            cache.get(s, "sm_90", (13, 0)).as_deref(),
            Some(&b"cubin bytes"[..])
        );
        assert_eq!(cache.get(s, "sm_90", (12, 9)), None, "another NVRTC misses");
        assert_eq!(
            cache.get(&SOURCES[1], "sm_90", (13, 0)),
            None,
            "another module misses"
        );
        // A second write replaces the entry whole; no temporary file is left behind.
        assert!(cache.put(s, "sm_90", (13, 0), b"newer"));
        assert_eq!(
            cache.get(s, "sm_90", (13, 0)).as_deref(),
            Some(&b"newer"[..])
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with(&format!("{}-", s.name)) && names[0].ends_with(".cubin"));
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
