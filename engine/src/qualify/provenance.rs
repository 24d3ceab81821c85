//! Where a run happened and what code ran: the GPU, driver and CUDA version read from the device, and the
//! engine's git commit.

use std::process::Command;

use vkae_record::Hardware;

/// The commit baked in at build time (`VKAE_ENGINE_COMMIT=$(git rev-parse HEAD) cargo build ...`, as
/// engine/qualify/build-device.sh does), if any.
pub const BUILD_COMMIT: Option<&str> = option_env!("VKAE_ENGINE_COMMIT");

fn is_commit(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The engine commit: an explicit `--engine-commit`, else the one baked in at build time, else `git rev-parse
/// HEAD` of the checkout this crate was built from (development runs), but only while that checkout's tracked
/// files are unmodified: a binary built from edited files, or a checkout whose files were replaced by a
/// copy of another tree (as on the device machine), would otherwise name a commit whose code did not run.
/// None when none is known: the record then omits it and fails the artifact lane, as it should.
pub fn engine_commit(explicit: Option<&str>) -> Option<String> {
    if let Some(c) = explicit {
        return Some(c.to_string());
    }
    if let Some(c) = BUILD_COMMIT.filter(|c| is_commit(c)) {
        return Some(c.to_string());
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let modified = git(&["status", "--porcelain", "--untracked-files=no"])?;
    if !modified.is_empty() {
        return None;
    }
    git(&["rev-parse", "HEAD"]).filter(|c| is_commit(c))
}

/// `nvidia-smi`'s name and driver version of GPU 0, when nvidia-smi answers.
fn nvidia_smi() -> Option<(String, String)> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version",
            "--format=csv,noheader",
            "--id=0",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .lines()
        .next()?
        .split(',')
        .map(|s| s.trim().to_string());
    Some((parts.next()?, parts.next()?))
}

/// The driver version from the kernel module, when nvidia-smi is missing.
fn proc_driver_version() -> Option<String> {
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.03  ..."
    text.lines()
        .next()?
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .map(str::to_string)
}

/// The CUDA version the driver supports (cuDriverGetVersion), e.g. "13.0". Call after a context exists.
fn cuda_driver_version() -> Option<String> {
    let mut v: std::ffi::c_int = 0;
    // SAFETY: cuDriverGetVersion writes one int; the driver library is loaded (a context was created).
    let r = unsafe { vkae_kernels::cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    (r == vkae_kernels::cudarc::driver::sys::CUresult::CUDA_SUCCESS && v > 0)
        .then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// The hardware of a GPU run: `device_name` as the engine's CUDA context reports it, the driver version from
/// nvidia-smi (or the kernel module), the CUDA version from the driver.
pub fn gpu_hardware(device_name: &str) -> Hardware {
    let smi = nvidia_smi();
    Hardware {
        gpu: device_name.to_string(),
        gpu_count: 1,
        driver: smi
            .map(|(_, d)| d)
            .or_else(proc_driver_version)
            .unwrap_or_else(|| "unknown (no nvidia-smi, no /proc/driver/nvidia)".into()),
        cuda: cuda_driver_version().unwrap_or_else(|| "unknown".into()),
    }
}

/// The hardware of a CPU run (tests, development): says plainly that no GPU was used.
pub fn cpu_hardware() -> Hardware {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    Hardware {
        gpu: format!("CPU only ({model}, {cores} threads)"),
        gpu_count: 1,
        driver: "none (CPU run)".into(),
        cuda: "none (CPU run)".into(),
    }
}
