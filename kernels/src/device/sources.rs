//! The CUDA sources this crate compiles, their digest, and the NVRTC step.
//!
//! Every module is `common.cuh` followed by one `.cu` file (one concern per file). The digest
//! [`kernels_sha256`] covers exactly those texts, in this order, so a recorded digest names the
//! code that ran.

use crate::error::{KernelError, Result};
use sha2::{Digest, Sha256};
use std::ffi::{CStr, CString};

/// Helpers prepended to every module.
pub const COMMON: &str = include_str!("../../cuda/common.cuh");

/// One `.cu` file and the kernels it defines.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// Module name (the file stem).
    pub name: &'static str,
    /// The file's text.
    pub source: &'static str,
    /// The `extern "C"` kernels it defines.
    pub functions: &'static [&'static str],
}

macro_rules! cu {
    ($name:literal, [$($f:literal),* $(,)?]) => {
        KernelSource {
            name: $name,
            source: include_str!(concat!("../../cuda/", $name, ".cu")),
            functions: &[$($f),*],
        }
    };
    ($name:literal, $functions:expr) => {
        KernelSource {
            name: $name,
            source: include_str!(concat!("../../cuda/", $name, ".cu")),
            functions: $functions,
        }
    };
}

/// gemv.cu's plain entries, one per batch size 1..=8 (`GEMV_MAX_ROWS`).
pub(crate) const GEMV_ENTRIES: [&str; 8] = [
    "gemv_bf16_m1",
    "gemv_bf16_m2",
    "gemv_bf16_m3",
    "gemv_bf16_m4",
    "gemv_bf16_m5",
    "gemv_bf16_m6",
    "gemv_bf16_m7",
    "gemv_bf16_m8",
];

/// Every module, in compile (and digest) order.
pub const SOURCES: &[KernelSource] = &[
    cu!("embedding", ["embed_gather_bf16"]),
    cu!("rms_norm", ["rms_norm_f32"]),
    cu!("rope", ["rope_inplace_f32"]),
    cu!("kv_cache", ["kv_append_bf16"]),
    cu!(
        "attention",
        [
            "attention_epl1",
            "attention_epl2",
            "attention_epl4",
            "attention_epl8",
            "attention_epl16",
            "attention_rounds_epl8",
            "attention_rounds_epl16",
            "attention_combine"
        ]
    ),
    cu!("geglu", ["geglu_f32", "geglu_f32_to_bf16"]),
    cu!("residual", ["add_f32", "scale_f32"]),
    cu!("softcap", ["softcap_f32"]),
    cu!("argmax", ["argmax_partial", "argmax_final"]),
    cu!("cast", ["cast_f32_to_bf16", "cast_bf16_to_f32"]),
    // The fused and weight-streaming kernels of the VKAE decode path.
    cu!("residual_norm", ["residual_rms_norm"]),
    cu!("qk_norm_rope_kv", ["qk_norm_rope_kv"]),
    cu!("ple_combine", ["ple_combine"]),
    cu!("softcap_argmax", ["softcap_argmax_partial"]),
    cu!("decode_step", ["decode_advance"]),
    cu!("gemv", &GEMV_ENTRIES),
    cu!(
        "gemm_skinny",
        ["skinny_bf16_t1", "skinny_bf16_t2", "skinny_bf16_t4"]
    ),
];

impl KernelSource {
    /// The exact text handed to NVRTC.
    pub fn full_text(&self) -> String {
        format!(
            "// ---- common.cuh ----\n{COMMON}\n// ---- {}.cu ----\n{}",
            self.name, self.source
        )
    }
}

/// The macro the `ablations` feature defines for every module.
const ABLATIONS_MACRO: &str = "VKAE_ABLATIONS";

/// SHA-256 (lower-case hex) over every module's exact compiled text, in [`SOURCES`] order, each
/// preceded by its name and separated by NUL bytes. With the `ablations` feature the macro it defines
/// comes first, so a build that compiles the ablation-only blocks never shares a digest with one that does not.
pub fn kernels_sha256() -> String {
    let mut h = Sha256::new();
    if cfg!(feature = "ablations") {
        h.update(ABLATIONS_MACRO.as_bytes());
        h.update([0u8]);
    }
    for s in SOURCES {
        h.update(s.name.as_bytes());
        h.update([0u8]);
        h.update(s.full_text().as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiled code for one module: a cubin for a real architecture (`sm_XX`), PTX otherwise.
#[derive(Debug, Clone)]
pub enum CompiledModule {
    Cubin(Vec<u8>),
    Ptx(String),
}

/// The NVRTC options used for `arch` (e.g. `sm_90`).
pub fn nvrtc_options(arch: &str) -> Vec<String> {
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        // Precise division and square root: the checks compare with f64 references.
        "--prec-div=true".to_string(),
        "--prec-sqrt=true".to_string(),
        "--fmad=true".to_string(),
    ];
    // The weight-streaming kernels' L2 prefetch block (gemv.cu, gemm_skinny.cu).
    if cfg!(feature = "ablations") {
        options.push(format!("--define-macro={ABLATIONS_MACRO}"));
    }
    // Development aid: the resource report (registers, spills) in the compile log; no codegen change.
    if std::env::var_os("VKAE_KERNELS_PTXAS_VERBOSE").is_some() {
        options.push("--ptxas-options=-v".to_string());
    }
    options
}

/// The NVRTC library's version (major, minor). Needs only the NVRTC library, not a GPU.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    use cudarc::nvrtc::sys;
    // SAFETY: probing for the shared library has no preconditions.
    if !unsafe { sys::is_culib_present() } {
        return Err(KernelError::Unavailable(
            "the NVRTC library (libnvrtc) was not found".into(),
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| KernelError::Compile {
            module: "(none)".into(),
            message: format!("reading the NVRTC version: {e}"),
            log: String::new(),
        })?;
    Ok((major, minor))
}

/// Compiles one module with NVRTC for `arch`. Needs only the NVRTC library, not a GPU.
pub fn compile(source: &KernelSource, arch: &str) -> Result<CompiledModule> {
    use cudarc::nvrtc::{result as nv, sys};
    // SAFETY: probing for the shared library has no preconditions.
    if !unsafe { sys::is_culib_present() } {
        return Err(KernelError::Unavailable(
            "the NVRTC library (libnvrtc) was not found".into(),
        ));
    }
    let text = CString::new(source.full_text()).map_err(|_| KernelError::Compile {
        module: source.name.into(),
        message: "source contains a NUL byte".into(),
        log: String::new(),
    })?;
    let name = CString::new(format!("{}.cu", source.name)).expect("module names have no NUL");
    let fail = |message: String, log: String| KernelError::Compile {
        module: source.name.into(),
        message,
        log,
    };
    let prog = nv::create_program(&text, Some(&name))
        .map_err(|e| fail(format!("creating the program: {e}"), String::new()))?;
    struct Guard(sys::nvrtcProgram);
    impl Drop for Guard {
        fn drop(&mut self) {
            // SAFETY: the program came from create_program and is destroyed once.
            let _ = unsafe { cudarc::nvrtc::result::destroy_program(self.0) };
        }
    }
    let guard = Guard(prog);
    let options = nvrtc_options(arch);
    // SAFETY: `prog` is live (owned by `guard`).
    let compiled = unsafe { nv::compile_program(guard.0, &options) };
    let log = unsafe { nv::get_program_log(guard.0) }
        .map(|raw| {
            let bytes: Vec<u8> = raw
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .unwrap_or_default();
    if let Err(e) = compiled {
        return Err(fail(format!("{e}; options {options:?}"), log));
    }
    if std::env::var_os("VKAE_KERNELS_PTXAS_VERBOSE").is_some() {
        eprintln!("---- {} ----\n{log}", source.name);
    }
    if arch.starts_with("sm_") {
        let mut size = 0usize;
        // SAFETY: `prog` compiled successfully; the buffer is sized by nvrtcGetCUBINSize.
        unsafe { sys::nvrtcGetCUBINSize(guard.0, &mut size) }
            .result()
            .map_err(|e| fail(format!("reading the cubin size: {e}"), log.clone()))?;
        let mut cubin = vec![0u8; size];
        unsafe { sys::nvrtcGetCUBIN(guard.0, cubin.as_mut_ptr().cast()) }
            .result()
            .map_err(|e| fail(format!("reading the cubin: {e}"), log.clone()))?;
        Ok(CompiledModule::Cubin(cubin))
    } else {
        let raw = unsafe { nv::get_ptx(guard.0) }
            .map_err(|e| fail(format!("reading the PTX: {e}"), log.clone()))?;
        // SAFETY: NVRTC returns a NUL-terminated string.
        let ptx = unsafe { CStr::from_ptr(raw.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok(CompiledModule::Ptx(ptx))
    }
}

/// For tests that need only the NVRTC library: whether it is present; if not, says so on stderr (the test then
/// returns, skipped visibly).
#[cfg(test)]
pub(crate) fn nvrtc_or_skip(test: &str) -> bool {
    // SAFETY: probing for the shared library has no preconditions.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    if !present {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "SKIP: no NVRTC library: {test}");
    }
    present
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `name` is defined by an `extern "C" __global__ void [__launch_bounds__(..)] name(` in the text.
    fn defined_directly(source: &str, name: &str) -> bool {
        source.match_indices(&format!("{name}(")).any(|(at, _)| {
            // The declaration since the previous statement or block must be a kernel's.
            let start = source[..at].rfind([';', '}']).map_or(0, |i| i + 1);
            source[start..at].contains("extern \"C\" __global__")
        })
    }

    /// Whether `name` (a stem and a number, e.g. `gemv_bf16_m4`) comes from a macro that pastes the number onto
    /// the stem (`#define GEMV_ENTRY(M) ... gemv_bf16_m##M(`) and is invoked with it (`GEMV_ENTRY(4)`).
    fn defined_by_macro(source: &str, name: &str) -> bool {
        let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let number = &name[stem.len()..];
        let Some(at) = source.find(&format!(" {stem}##")) else {
            return false;
        };
        let Some(define) = source[..at].rfind("#define ") else {
            return false;
        };
        let macro_name = source[define + 8..]
            .split(|c: char| c == '(' || c.is_whitespace())
            .next()
            .unwrap_or("");
        !number.is_empty() && source.contains(&format!("{macro_name}({number})"))
    }

    /// Whether `name` comes from a macro that takes the whole name as its first parameter
    /// (`#define ATTENTION_ENTRY(NAME, ...) ... __global__ void NAME(`) and is invoked with it
    /// (`ATTENTION_ENTRY(attention_epl8, ...)`).
    fn defined_by_named_macro(source: &str, name: &str) -> bool {
        source.match_indices("#define ").any(|(at, _)| {
            let rest = &source[at + 8..];
            let Some((macro_name, params)) = rest.split_once('(') else {
                return false;
            };
            let first = params.split([',', ')']).next().unwrap_or("").trim();
            let body_end = rest.find("\n\n").unwrap_or(rest.len());
            !first.is_empty()
                && rest[..body_end].contains(&format!("__global__ void {first}("))
                && source.contains(&format!("{macro_name}({name},"))
        })
    }

    #[test]
    fn every_declared_kernel_is_defined_in_its_file() {
        for s in SOURCES {
            for f in s.functions {
                let defined = defined_directly(s.source, f)
                    || defined_by_macro(s.source, f)
                    || defined_by_named_macro(s.source, f);
                assert!(defined, "{f} not found in {}.cu", s.name);
            }
        }
        let gemv = SOURCES.iter().find(|s| s.name == "gemv").unwrap().source;
        assert!(!defined_by_macro(gemv, "gemv_bf16_m9"), "no GEMV_ENTRY(9)");
        assert!(
            !defined_by_macro(gemv, "gemv_bf16_fused_m1"),
            "no such stem"
        );
        let attention = SOURCES
            .iter()
            .find(|s| s.name == "attention")
            .unwrap()
            .source;
        assert!(defined_by_named_macro(attention, "attention_rounds_epl16"));
        assert!(
            !defined_by_named_macro(attention, "attention_rounds_epl4"),
            "no ATTENTION_ENTRY(attention_rounds_epl4, ...)"
        );
        assert!(
            !defined_directly(gemv, "gemv_bf16_fused_m1"),
            "no such kernel"
        );
        assert!(
            !defined_directly(gemv, "gemv_impl"),
            "a device function is not a kernel"
        );
    }

    #[test]
    fn digest_is_stable_hex_and_depends_on_the_sources() {
        let d = kernels_sha256();
        assert_eq!(d.len(), 64);
        assert!(d.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(d, kernels_sha256());
        let mut h = Sha256::new();
        h.update(b"other");
        let other: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(d, other);
    }

    /// Compiles every module for sm_90 where the NVRTC library is present (no GPU needed).
    #[test]
    fn every_module_compiles_for_sm_90() {
        if !nvrtc_or_skip("every_module_compiles_for_sm_90") {
            return;
        }
        let (major, _) = nvrtc_version().unwrap();
        assert!(major >= 12, "NVRTC {major}.x");
        for s in SOURCES {
            match compile(s, "sm_90") {
                Ok(CompiledModule::Cubin(c)) => {
                    assert!(!c.is_empty(), "{} gave an empty cubin", s.name)
                }
                Ok(CompiledModule::Ptx(_)) => panic!("sm_90 should give a cubin"),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
