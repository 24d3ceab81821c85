//! The engine's side of a run: the generic path and the VKAE path (the kernel path where it covers the model on
//! CUDA; elsewhere, or when the kernel path cannot be built, the generic path stands in and the path's detail
//! says why), both from the same loaded weights, and the VKAE path's quality-stream logits.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{bail, Result};
use vkae_record::{Hardware, Role, UnavailablePath};

use super::paths::{EnginePath, Generate, ENGINE_GENERIC, VKAE};
use super::progress::Phase;
use super::provenance;
use super::settings::Settings;
use crate::vkae::{VkaeModel, VkaeOptions};
use crate::{Backend, Engine, Model};

pub struct EngineSide {
    generic: Rc<RefCell<Engine>>,
    kernel: Option<Rc<RefCell<VkaeModel>>>,
    pub hardware: Hardware,
    pub device_name: String,
    generic_note: &'static str,
    /// Why the generic path stands in for the VKAE path, when it does.
    stand_in: Option<String>,
    /// The kernel path's failure, for `unavailable_paths`.
    pub unavailable: Option<UnavailablePath>,
}

impl EngineSide {
    /// Loads the generic path, then the kernel path where it applies.
    pub fn open(model: &Model, s: &Settings) -> Result<EngineSide> {
        let phase = Phase::start("engine paths", 2, s.progress_bars);
        let engine = Engine::new(model.clone(), s.backend)?;
        let (hardware, device_name) = match &engine {
            Engine::Cuda(g) => (
                provenance::gpu_hardware(g.device_name()),
                g.device_name().to_string(),
            ),
            Engine::Vkae(v) => (
                provenance::gpu_hardware(v.device_name()),
                v.device_name().to_string(),
            ),
            Engine::Cpu(_) => (provenance::cpu_hardware(), "cpu".to_string()),
        };
        phase.inc("generic path loaded");
        let generic_note = match s.backend {
            Backend::Cuda => {
                "BF16 weights, one kernel per op (vkae-kernels) and cuBLAS projections"
            }
            Backend::Cpu => "the engine's f32 CPU code (--device cpu)",
            Backend::Vkae => unreachable!("--device vkae is refused when the settings are read"),
        };
        let applies = match (s.backend, s.vkae_kernel_path, model.config.enable_moe_block) {
            (Backend::Cuda | Backend::Vkae, true, false) => Ok(()),
            (Backend::Cpu, ..) => Err("no kernel path on the CPU"),
            (_, false, _) => Err("--vkae-path generic"),
            (_, _, true) => Err("the kernel path does not cover MoE layers yet"),
        };
        let (kernel, stand_in, unavailable) = match applies {
            Err(why) => (None, Some(why.to_string()), None),
            // The generic path's copy of the weights stays on the GPU meanwhile (the H200 holds both).
            Ok(()) => match VkaeModel::new(model, VkaeOptions::default()) {
                Ok(vm) => (Some(Rc::new(RefCell::new(vm))), None, None),
                Err(e) => {
                    // Said in the record, never hidden: the kernel path failed and the generic path stands in.
                    let mut reason = format!("{e:#}");
                    reason.truncate(1000);
                    let why = format!("the kernel path failed, see unavailable_paths: {reason}");
                    let u = UnavailablePath {
                        name: "vkae-kernel-path".into(),
                        role: Role::Vkae,
                        reason,
                    };
                    (None, Some(why), Some(u))
                }
            },
        };
        phase.inc("vkae path loaded");
        phase.finish(&device_name);
        Ok(EngineSide {
            generic: Rc::new(RefCell::new(engine)),
            kernel,
            hardware,
            device_name,
            generic_note,
            stand_in,
            unavailable,
        })
    }

    pub fn kernel_path_on(&self) -> bool {
        self.kernel.is_some()
    }

    pub fn generic_path(&self, prompt: &[u32], output_tokens: usize) -> EnginePath<'static> {
        let engine = self.generic.clone();
        EnginePath::new(
            ENGINE_GENERIC,
            Box::new(move |r| engine.borrow_mut().generate(r)),
            prompt,
            output_tokens,
        )
    }

    pub fn vkae_path(&self, prompt: &[u32], output_tokens: usize) -> EnginePath<'static> {
        let generate: Generate<'static> = match &self.kernel {
            Some(vm) => {
                let vm = vm.clone();
                Box::new(move |r| vm.borrow_mut().generate(r))
            }
            None => {
                let engine = self.generic.clone();
                Box::new(move |r| engine.borrow_mut().generate(r))
            }
        };
        EnginePath::new(VKAE, generate, prompt, output_tokens)
    }

    pub fn generic_detail(&self) -> String {
        format!("generic path: {}", self.generic_note)
    }

    /// The VKAE path's detail (after measuring: the kernel path's projection choices are measured as it runs).
    pub fn vkae_detail(&self) -> String {
        let Some(vm) = &self.kernel else {
            return format!(
                "VKAE path = the generic path ({}): {}",
                self.stand_in.as_deref().unwrap_or_default(),
                self.generic_note
            );
        };
        let options = VkaeOptions::default();
        let choices = vm.borrow().projection_choices();
        let count = |name: &str| choices.iter().filter(|c| c.chosen.name() == name).count();
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "VKAE kernel path: fused kernels, q|k|v and gate|up concatenated, one CUDA graph per decode step \
             (graphs {}), programmatic dependent launch {}, GeGLU in the GEMV epilogue {}, \
             attention splits merged in the kernel {}, attention softmax per round of keys {}, \
             decode projections (<= 32 rows) on the weight-streaming GEMV, the tensor-core skinny GEMM or cuBLAS{} \
             as measured per shape and batch ({} GEMV, {} skinny, {} cuBLAS{} of {} shapes)",
            options.graphs,
            on(options.programmatic_launch),
            on(options.ablations().fuse_geglu),
            on(options.ablations().merge_attention),
            on(options.ablations().attention_softmax_per_round),
            if options.cublaslt_candidates() { " (or one of cuBLASLt's listed algorithms)" } else { "" },
            count("GEMV"),
            count("skinny"),
            count("cuBLAS"),
            if options.cublaslt_candidates() { format!(", {} cuBLASLt", count("cuBLASLt")) } else { String::new() },
            choices.len()
        )
    }

    /// The VKAE path's logits over the quality stream. The kernel path runs it through the decode step itself
    /// (the captured graph, one token a step, its first token prefilled), so the guard covers the kernels the
    /// speed figures come from, not only the prefill.
    pub fn quality_logits(&self, q_ids: &[u32], vocab: usize) -> Result<Vec<f32>> {
        let logits = match (&self.kernel, q_ids.split_first()) {
            (Some(vm), Some((first, rest))) => vm
                .borrow_mut()
                .decode_forced(std::slice::from_ref(first), rest)?
                .concat(),
            (Some(_), None) => vec![],
            (None, _) => self.generic.borrow_mut().prefill_logits(q_ids)?,
        };
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            bail!(
                "the VKAE path's quality-stream logits hold a non-finite value at row {}",
                i / vocab
            );
        }
        Ok(logits)
    }

    /// What the record says about the code that ran: the kernel sources' digest, the kernels switched on, the
    /// precision. On the CPU no GPU kernel ran: no digest is claimed (the artifact lane fails it).
    pub fn kernels(&self, backend: Backend) -> (Option<String>, Vec<String>, &'static str) {
        if backend == Backend::Cpu {
            return (None, vec![], "f32");
        }
        let mut k: Vec<String> = vkae_kernels::sources::SOURCES
            .iter()
            .flat_map(|src| src.functions.iter().map(|f| f.to_string()))
            .collect();
        k.push("cublas_gemm_bf16".into());
        if self.kernel.is_some() {
            k.push("cuda_graph_decode_step".into());
            k.push("programmatic_dependent_launch".into());
            k.push(if VkaeOptions::default().cublaslt_candidates() {
                "projections=measured(gemv|skinny|cublas|cublaslt)".into()
            } else {
                "projections=measured(gemv|skinny|cublas)".into()
            });
        }
        (Some(vkae_kernels::kernels_sha256()), k, "bf16")
    }
}
