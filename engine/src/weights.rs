//! The decoder's parameters: one list of (name, shape) derived from the config, and three ways to fill it
//! (memory-mapped safetensors checkpoints, deterministic synthetic weights, and writing a checkpoint back).
//!
//! Tensor names are transformers' module paths under the text model (`embed_tokens.weight`,
//! `layers.3.self_attn.q_proj.weight`, ...). Text-only checkpoints (`Gemma4ForCausalLM`) put them under
//! `model.`, multimodal ones (`Gemma4ForConditionalGeneration`) under `model.language_model.`; vision and audio
//! towers are ignored.

use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{LayerSpec, TextConfig};
use crate::error::{EngineError, Result};
use crate::tensor::{f32_to_bf16, Buf, Data, Tensor};

/// What kind of parameter a tensor is (decides its synthetic initialisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A matrix or embedding: random, std 0.02 (transformers' initializer_range).
    Matrix,
    /// A norm weight, a router scale, a per-expert scale or a layer scalar: near 1.
    Scale,
    /// A q_norm / k_norm weight over `head_dim`: near `head_dim^-1/4`, so that with attention scaling 1.0
    /// the scores have unit spread (scales near 1 give scores with std sqrt(head_dim): hard, chaotic
    /// attention that random-weight comparisons cannot survive; trained models learn small scales here).
    QkNorm(usize),
}

#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// Name relative to the text model (without `model.`), except `lm_head.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
}

/// Every parameter the text decoder has, in a stable order.
pub fn param_specs(cfg: &TextConfig) -> Vec<ParamSpec> {
    let mut out = Vec::new();
    let mut push =
        |name: String, shape: Vec<usize>, kind| out.push(ParamSpec { name, shape, kind });
    let h = cfg.hidden_size;
    push(
        "embed_tokens.weight".into(),
        vec![cfg.vocab_size, h],
        ParamKind::Matrix,
    );
    if cfg.has_ple() {
        let lp = cfg.num_hidden_layers * cfg.hidden_size_per_layer_input;
        push(
            "embed_tokens_per_layer.weight".into(),
            vec![cfg.vocab_size_per_layer_input, lp],
            ParamKind::Matrix,
        );
        push(
            "per_layer_model_projection.weight".into(),
            vec![lp, h],
            ParamKind::Matrix,
        );
        push(
            "per_layer_projection_norm.weight".into(),
            vec![cfg.hidden_size_per_layer_input],
            ParamKind::Scale,
        );
    }
    for spec in cfg.layers() {
        let p = |s: &str| format!("layers.{}.{s}", spec.index);
        for n in [
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ] {
            push(p(&format!("{n}.weight")), vec![h], ParamKind::Scale);
        }
        push(p("layer_scalar"), vec![1], ParamKind::Scale);
        let hd = spec.head_dim;
        let nq = cfg.num_attention_heads * hd;
        push(p("self_attn.q_proj.weight"), vec![nq, h], ParamKind::Matrix);
        push(
            p("self_attn.q_norm.weight"),
            vec![hd],
            ParamKind::QkNorm(hd),
        );
        if spec.kv_source.is_none() {
            push(
                p("self_attn.k_proj.weight"),
                vec![spec.kv_heads * hd, h],
                ParamKind::Matrix,
            );
            push(
                p("self_attn.k_norm.weight"),
                vec![hd],
                ParamKind::QkNorm(hd),
            );
            if spec.has_v_proj {
                push(
                    p("self_attn.v_proj.weight"),
                    vec![spec.kv_heads * hd, h],
                    ParamKind::Matrix,
                );
            }
        }
        push(p("self_attn.o_proj.weight"), vec![h, nq], ParamKind::Matrix);
        let i = spec.intermediate_size;
        push(p("mlp.gate_proj.weight"), vec![i, h], ParamKind::Matrix);
        push(p("mlp.up_proj.weight"), vec![i, h], ParamKind::Matrix);
        push(p("mlp.down_proj.weight"), vec![h, i], ParamKind::Matrix);
        if cfg.has_ple() {
            let pd = cfg.hidden_size_per_layer_input;
            push(
                p("per_layer_input_gate.weight"),
                vec![pd, h],
                ParamKind::Matrix,
            );
            push(
                p("per_layer_projection.weight"),
                vec![h, pd],
                ParamKind::Matrix,
            );
            push(
                p("post_per_layer_input_norm.weight"),
                vec![h],
                ParamKind::Scale,
            );
        }
        if cfg.enable_moe_block {
            let (e, mi) = (cfg.num_experts, cfg.moe_intermediate_size);
            push(p("router.proj.weight"), vec![e, h], ParamKind::Matrix);
            push(p("router.scale"), vec![h], ParamKind::Scale);
            push(p("router.per_expert_scale"), vec![e], ParamKind::Scale);
            push(
                p("experts.gate_up_proj"),
                vec![e, 2 * mi, h],
                ParamKind::Matrix,
            );
            push(p("experts.down_proj"), vec![e, h, mi], ParamKind::Matrix);
            for n in [
                "post_feedforward_layernorm_1",
                "post_feedforward_layernorm_2",
                "pre_feedforward_layernorm_2",
            ] {
                push(p(&format!("{n}.weight")), vec![h], ParamKind::Scale);
            }
        }
    }
    push("norm.weight".into(), vec![h], ParamKind::Scale);
    if !cfg.tie_word_embeddings {
        push(
            "lm_head.weight".into(),
            vec![cfg.vocab_size, h],
            ParamKind::Matrix,
        );
    }
    out
}

/// Attention weights of one layer.
#[derive(Clone)]
pub struct AttnWeights {
    pub q_proj: Tensor,
    pub q_norm: Tensor,
    /// `None` on KV-shared layers.
    pub k_proj: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    /// `None` on KV-shared layers and k=v global layers.
    pub v_proj: Option<Tensor>,
    pub o_proj: Tensor,
}

#[derive(Clone)]
pub struct PleLayerWeights {
    pub gate: Tensor,
    pub projection: Tensor,
    pub post_norm: Tensor,
}

#[derive(Clone)]
pub struct MoeWeights {
    pub router_proj: Tensor,
    pub router_scale: Tensor,
    pub per_expert_scale: Tensor,
    /// `[experts, 2 * moe_intermediate, hidden]`: gate rows first, then up rows.
    pub gate_up: Tensor,
    /// `[experts, hidden, moe_intermediate]`.
    pub down: Tensor,
    pub post_ff_norm_1: Tensor,
    pub post_ff_norm_2: Tensor,
    pub pre_ff_norm_2: Tensor,
}

#[derive(Clone)]
pub struct LayerWeights {
    pub spec: LayerSpec,
    pub input_norm: Tensor,
    pub post_attn_norm: Tensor,
    pub pre_ff_norm: Tensor,
    pub post_ff_norm: Tensor,
    pub layer_scalar: f32,
    pub attn: AttnWeights,
    pub gate: Tensor,
    pub up: Tensor,
    pub down: Tensor,
    pub ple: Option<PleLayerWeights>,
    pub moe: Option<MoeWeights>,
}

#[derive(Clone)]
pub struct PleWeights {
    /// `[vocab_per_layer, layers * ple_dim]`.
    pub table: Tensor,
    /// `[layers * ple_dim, hidden]`.
    pub model_projection: Tensor,
    pub projection_norm: Tensor,
}

/// A loaded model: config plus host weights.
#[derive(Clone)]
pub struct Model {
    pub config: TextConfig,
    pub embed: Tensor,
    /// `None` when tied to `embed`.
    pub lm_head: Option<Tensor>,
    pub final_norm: Tensor,
    pub ple: Option<PleWeights>,
    pub layers: Vec<LayerWeights>,
    /// Where the weights came from (a folder, or `synthetic:FAMILY:SEED`).
    pub source: String,
}

impl Model {
    /// Builds the model from a name -> tensor map that holds every spec'd parameter with its shape.
    fn assemble(
        config: TextConfig,
        mut t: HashMap<String, Tensor>,
        source: String,
    ) -> Result<Self> {
        let mut take = |name: &str| -> Result<Tensor> {
            t.remove(name).ok_or_else(|| EngineError::MissingTensor {
                name: name.to_string(),
                looked_for: "assembled parameter map".into(),
            })
        };
        let embed = take("embed_tokens.weight")?;
        let ple = if config.has_ple() {
            Some(PleWeights {
                table: take("embed_tokens_per_layer.weight")?,
                model_projection: take("per_layer_model_projection.weight")?,
                projection_norm: take("per_layer_projection_norm.weight")?,
            })
        } else {
            None
        };
        let mut layers = Vec::new();
        for spec in config.layers() {
            let i = spec.index;
            let mut l = |s: &str| take(&format!("layers.{i}.{s}"));
            let shared = spec.kv_source.is_some();
            let attn = AttnWeights {
                q_proj: l("self_attn.q_proj.weight")?,
                q_norm: l("self_attn.q_norm.weight")?,
                k_proj: if shared {
                    None
                } else {
                    Some(l("self_attn.k_proj.weight")?)
                },
                k_norm: if shared {
                    None
                } else {
                    Some(l("self_attn.k_norm.weight")?)
                },
                v_proj: if spec.has_v_proj {
                    Some(l("self_attn.v_proj.weight")?)
                } else {
                    None
                },
                o_proj: l("self_attn.o_proj.weight")?,
            };
            let layer_scalar = l("layer_scalar")?.to_f32()[0];
            let ple = if config.has_ple() {
                Some(PleLayerWeights {
                    gate: l("per_layer_input_gate.weight")?,
                    projection: l("per_layer_projection.weight")?,
                    post_norm: l("post_per_layer_input_norm.weight")?,
                })
            } else {
                None
            };
            let moe = if config.enable_moe_block {
                Some(MoeWeights {
                    router_proj: l("router.proj.weight")?,
                    router_scale: l("router.scale")?,
                    per_expert_scale: l("router.per_expert_scale")?,
                    gate_up: l("experts.gate_up_proj")?,
                    down: l("experts.down_proj")?,
                    post_ff_norm_1: l("post_feedforward_layernorm_1.weight")?,
                    post_ff_norm_2: l("post_feedforward_layernorm_2.weight")?,
                    pre_ff_norm_2: l("pre_feedforward_layernorm_2.weight")?,
                })
            } else {
                None
            };
            layers.push(LayerWeights {
                input_norm: l("input_layernorm.weight")?,
                post_attn_norm: l("post_attention_layernorm.weight")?,
                pre_ff_norm: l("pre_feedforward_layernorm.weight")?,
                post_ff_norm: l("post_feedforward_layernorm.weight")?,
                layer_scalar,
                attn,
                gate: l("mlp.gate_proj.weight")?,
                up: l("mlp.up_proj.weight")?,
                down: l("mlp.down_proj.weight")?,
                ple,
                moe,
                spec,
            });
        }
        let final_norm = take("norm.weight")?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(take("lm_head.weight")?)
        };
        Ok(Model {
            config,
            embed,
            lm_head,
            final_norm,
            ple,
            layers,
            source,
        })
    }

    /// The LM head matrix `[vocab, hidden]` (the tied embedding unless the checkpoint has its own).
    pub fn lm_head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// Every parameter by its spec name, in `param_specs` order (for writing and uploading).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut map: HashMap<String, Tensor> = HashMap::new();
        map.insert("embed_tokens.weight".into(), self.embed.clone());
        map.insert("norm.weight".into(), self.final_norm.clone());
        if let Some(h) = &self.lm_head {
            map.insert("lm_head.weight".into(), h.clone());
        }
        if let Some(p) = &self.ple {
            map.insert("embed_tokens_per_layer.weight".into(), p.table.clone());
            map.insert(
                "per_layer_model_projection.weight".into(),
                p.model_projection.clone(),
            );
            map.insert(
                "per_layer_projection_norm.weight".into(),
                p.projection_norm.clone(),
            );
        }
        for l in &self.layers {
            let i = l.spec.index;
            let mut put = |s: &str, t: &Tensor| {
                map.insert(format!("layers.{i}.{s}"), t.clone());
            };
            put("input_layernorm.weight", &l.input_norm);
            put("post_attention_layernorm.weight", &l.post_attn_norm);
            put("pre_feedforward_layernorm.weight", &l.pre_ff_norm);
            put("post_feedforward_layernorm.weight", &l.post_ff_norm);
            let scalar = match l.input_norm.data {
                Data::Bf16(_) => Tensor::from_bf16(vec![1], vec![f32_to_bf16(l.layer_scalar)]),
                Data::F32(_) => Tensor::from_f32(vec![1], vec![l.layer_scalar]),
            };
            put("layer_scalar", &scalar);
            put("self_attn.q_proj.weight", &l.attn.q_proj);
            put("self_attn.q_norm.weight", &l.attn.q_norm);
            if let Some(t) = &l.attn.k_proj {
                put("self_attn.k_proj.weight", t);
            }
            if let Some(t) = &l.attn.k_norm {
                put("self_attn.k_norm.weight", t);
            }
            if let Some(t) = &l.attn.v_proj {
                put("self_attn.v_proj.weight", t);
            }
            put("self_attn.o_proj.weight", &l.attn.o_proj);
            put("mlp.gate_proj.weight", &l.gate);
            put("mlp.up_proj.weight", &l.up);
            put("mlp.down_proj.weight", &l.down);
            if let Some(p) = &l.ple {
                put("per_layer_input_gate.weight", &p.gate);
                put("per_layer_projection.weight", &p.projection);
                put("post_per_layer_input_norm.weight", &p.post_norm);
            }
            if let Some(m) = &l.moe {
                put("router.proj.weight", &m.router_proj);
                put("router.scale", &m.router_scale);
                put("router.per_expert_scale", &m.per_expert_scale);
                put("experts.gate_up_proj", &m.gate_up);
                put("experts.down_proj", &m.down);
                put("post_feedforward_layernorm_1.weight", &m.post_ff_norm_1);
                put("post_feedforward_layernorm_2.weight", &m.post_ff_norm_2);
                put("pre_feedforward_layernorm_2.weight", &m.pre_ff_norm_2);
            }
        }
        param_specs(&self.config)
            .into_iter()
            .map(|s| {
                let t = map
                    .remove(&s.name)
                    .expect("model holds every spec'd tensor");
                (s.name, t)
            })
            .collect()
    }

    /// Loads a Hugging Face checkpoint folder: `config.json` plus `model.safetensors` or sharded
    /// `model-*.safetensors` with `model.safetensors.index.json`. Tensors are memory-mapped.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = TextConfig::from_path(dir)?;
        let files = safetensors_files(dir)?;
        // name -> (file index)
        let mut maps: Vec<Arc<Mmap>> = Vec::new();
        let mut locations: HashMap<String, usize> = HashMap::new();
        for (fi, f) in files.iter().enumerate() {
            let file = std::fs::File::open(f).map_err(|e| {
                EngineError::Checkpoint(format!("cannot open {}: {e}", f.display()))
            })?;
            // SAFETY: the checkpoint files are treated as read-only for the life of the model.
            let map = unsafe { Mmap::map(&file) }
                .map_err(|e| EngineError::Checkpoint(format!("cannot map {}: {e}", f.display())))?;
            let (_, meta) = SafeTensors::read_metadata(&map).map_err(|e| {
                EngineError::Checkpoint(format!("{} is not a safetensors file: {e}", f.display()))
            })?;
            for name in meta.tensors().keys() {
                locations.insert(name.clone(), fi);
            }
            maps.push(Arc::new(map));
        }
        let prefix = [
            "model.language_model.",
            "model.",
            "language_model.model.",
            "language_model.",
            "",
        ]
        .into_iter()
        .find(|p| locations.contains_key(&format!("{p}embed_tokens.weight")))
        .ok_or_else(|| EngineError::MissingTensor {
            name: "embed_tokens.weight".into(),
            looked_for: "model.language_model.embed_tokens.weight, model.embed_tokens.weight, ..."
                .into(),
        })?;
        let parsed: Vec<SafeTensors> = maps
            .iter()
            .map(|m| {
                SafeTensors::deserialize(m).map_err(|e| EngineError::Checkpoint(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut tensors = HashMap::new();
        for spec in param_specs(&config) {
            let full = if spec.name == "lm_head.weight" {
                "lm_head.weight".to_string()
            } else {
                format!("{prefix}{}", spec.name)
            };
            let fi = *locations
                .get(&full)
                .ok_or_else(|| EngineError::MissingTensor {
                    name: full.clone(),
                    looked_for: format!("{} safetensors file(s) in {}", files.len(), dir.display()),
                })?;
            let view = parsed[fi]
                .tensor(&full)
                .map_err(|e| EngineError::Checkpoint(format!("{full}: {e}")))?;
            if view.shape() != spec.shape.as_slice() {
                return Err(EngineError::WrongShape {
                    name: full,
                    expected: spec.shape.clone(),
                    actual: view.shape().to_vec(),
                });
            }
            let map = &maps[fi];
            let data = view.data();
            let off = data.as_ptr() as usize - map.as_ptr() as usize;
            let n = spec.shape.iter().product::<usize>();
            let t = match view.dtype() {
                Dtype::BF16 => Tensor {
                    shape: spec.shape.clone(),
                    data: Data::Bf16(mapped_or_copied(map, off, n, data, |c| {
                        u16::from_le_bytes([c[0], c[1]])
                    })),
                },
                Dtype::F32 => Tensor {
                    shape: spec.shape.clone(),
                    data: Data::F32(mapped_or_copied(map, off, n, data, |c| {
                        f32::from_le_bytes([c[0], c[1], c[2], c[3]])
                    })),
                },
                Dtype::F16 => Tensor::from_f32(
                    spec.shape.clone(),
                    data.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                ),
                other => {
                    return Err(EngineError::UnsupportedDtype {
                        name: full,
                        dtype: format!("{other:?}"),
                    })
                }
            };
            tensors.insert(spec.name, t);
        }
        drop(parsed);
        Model::assemble(config, tensors, dir.display().to_string())
    }

    /// Random BF16 weights at `config`'s shape, a pure function of `seed`: matrices uniform with std 0.02,
    /// scales (norm weights, router scales, layer scalars) uniform in [0.8, 1.2] so that a dropped multiply
    /// shows, q/k norm scales times `head_dim^-1/4` (see [`ParamKind::QkNorm`]).
    pub fn synthetic(config: TextConfig, seed: u64, source: String) -> Result<Self> {
        config.validate()?;
        let mut tensors = HashMap::new();
        for spec in param_specs(&config) {
            let n: usize = spec.shape.iter().product();
            let stream = seed ^ fnv1a(spec.name.as_bytes());
            let v = random_bf16(n, stream, spec.kind);
            tensors.insert(spec.name, Tensor::from_bf16(spec.shape, v));
        }
        Model::assemble(config, tensors, source)
    }

    /// Writes `config.json`, `model.safetensors.index.json` and `model-NNNNN-of-NNNNN.safetensors` shards
    /// (tensor names under `model.`, as `Gemma4ForCausalLM.save_pretrained` writes them) into `dir`.
    /// Files are written under temporary names and renamed, so a failed write leaves no half checkpoint.
    pub fn write_checkpoint(&self, dir: &Path, shard_bytes: usize) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let named = self.named_tensors();
        let mut shards: Vec<Vec<(String, Tensor)>> = vec![vec![]];
        let mut cur = 0usize;
        for (name, t) in named {
            let b = t.numel() * t.elem_bytes();
            if cur > 0 && cur + b > shard_bytes {
                shards.push(vec![]);
                cur = 0;
            }
            cur += b;
            let full = if name == "lm_head.weight" {
                name
            } else {
                format!("model.{name}")
            };
            shards.last_mut().expect("one shard").push((full, t));
        }
        let count = shards.len();
        let mut weight_map = BTreeMap::new();
        let mut total = 0usize;
        let mut written = Vec::new();
        for (si, shard) in shards.into_iter().enumerate() {
            let fname = format!("model-{:05}-of-{:05}.safetensors", si + 1, count);
            let views: Vec<(String, TensorView)> = shard
                .iter()
                .map(|(n, t)| {
                    total += t.numel() * t.elem_bytes();
                    weight_map.insert(n.clone(), Value::String(fname.clone()));
                    (n.clone(), TensorView(t))
                })
                .collect();
            let tmp = dir.join(format!(".{fname}.tmp"));
            let mut meta = HashMap::new();
            meta.insert("format".to_string(), "pt".to_string());
            safetensors::serialize_to_file(views, Some(meta), &tmp)
                .map_err(|e| EngineError::Checkpoint(format!("writing {fname}: {e}")))?;
            written.push((tmp, dir.join(fname)));
        }
        let index =
            serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let tmp_index = dir.join(".model.safetensors.index.json.tmp");
        std::fs::write(&tmp_index, serde_json::to_vec_pretty(&index).expect("json"))?;
        written.push((tmp_index, dir.join("model.safetensors.index.json")));
        let tmp_cfg = dir.join(".config.json.tmp");
        std::fs::write(
            &tmp_cfg,
            serde_json::to_vec_pretty(&self.config.to_json()).expect("json"),
        )?;
        written.push((tmp_cfg, dir.join("config.json")));
        for (from, to) in written {
            std::fs::rename(from, to)?;
        }
        Ok(())
    }
}

struct TensorView<'a>(&'a Tensor);

impl safetensors::View for TensorView<'_> {
    fn dtype(&self) -> Dtype {
        match self.0.data {
            Data::Bf16(_) => Dtype::BF16,
            Data::F32(_) => Dtype::F32,
        }
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.0.bytes())
    }
    fn data_len(&self) -> usize {
        self.0.numel() * self.0.elem_bytes()
    }
}

fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let v: Value = serde_json::from_slice(&std::fs::read(&index)?)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", index.display())))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                EngineError::Checkpoint(format!("{}: no weight_map", index.display()))
            })?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        files.sort();
        files.dedup();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        for p in &paths {
            if !p.exists() {
                return Err(EngineError::Checkpoint(format!(
                    "{} names shard {} which does not exist",
                    index.display(),
                    p.display()
                )));
            }
        }
        return Ok(paths);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(EngineError::Checkpoint(format!(
        "{}: neither model.safetensors nor model.safetensors.index.json",
        dir.display()
    )))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[inline]
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform random BF16 values, counter-based so that chunks can be generated in parallel.
fn random_bf16(n: usize, stream: u64, kind: ParamKind) -> Vec<u16> {
    let mut v = vec![0u16; n];
    let half_width = 0.02f32 * 3f32.sqrt(); // std 0.02
    v.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c as u64) << 16;
            for (j, o) in chunk.iter_mut().enumerate() {
                let r = splitmix64(
                    stream.wrapping_add((base + j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                );
                let u = (r >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0; // [-1, 1)
                let x = match kind {
                    ParamKind::Matrix => u * half_width,
                    ParamKind::Scale => 1.0 + 0.2 * u,
                    ParamKind::QkNorm(hd) => (1.0 + 0.2 * u) * (hd as f32).powf(-0.25),
                };
                *o = f32_to_bf16(x);
            }
        });
    v
}

/// `n` elements of `T` at byte `off` of `map` (`data` is those bytes): read in place where `off` is aligned
/// for `T`, else copied out element by element with `read` (safetensors does not promise aligned data).
fn mapped_or_copied<T: Copy + 'static>(
    map: &Arc<Mmap>,
    off: usize,
    n: usize,
    data: &[u8],
    read: fn(&[u8]) -> T,
) -> Buf<T> {
    let size = std::mem::size_of::<T>();
    if off.is_multiple_of(size) {
        Buf::Mapped {
            map: map.clone(),
            byte_offset: off,
            len: n,
        }
    } else {
        Buf::Owned(Arc::new(data.chunks_exact(size).map(read).collect()))
    }
}
