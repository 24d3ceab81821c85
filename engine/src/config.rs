//! Gemma 4 text-decoder configuration: parsing `config.json` (a `gemma4` config with a nested `text_config`,
//! or a `gemma4_text` config), the five official family shapes, and the per-layer facts every backend needs
//! (attention kind, head dim, KV heads, which layer owns the KV a layer reads, MLP width, rope frequencies).
//!
//! Authority: transformers 5.17 `models/gemma4/configuration_gemma4.py` and `modeling_gemma4.py`.

use serde_json::{json, Map, Value};
use std::path::Path;

use crate::error::EngineError;

/// Attention kind of one decoder layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// Sees the last `sliding_window` positions (itself included).
    Sliding,
    /// Sees every earlier position.
    Full,
}

impl LayerKind {
    pub fn parse(s: &str) -> Result<Self, EngineError> {
        match s {
            "sliding_attention" => Ok(Self::Sliding),
            "full_attention" => Ok(Self::Full),
            other => Err(EngineError::Config(format!(
                "layer_types: unsupported layer type {other:?} (expected sliding_attention or full_attention)"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sliding => "sliding_attention",
            Self::Full => "full_attention",
        }
    }
}

/// Rotary embedding of one attention kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    /// `default` or `proportional`.
    pub rope_type: String,
    pub theta: f64,
    /// Fraction of the head dim that rotates (proportional rope); 1.0 for default rope.
    pub partial_rotary_factor: f64,
    /// Frequency divisor (`factor`, proportional rope only); 1.0 when absent.
    pub factor: f64,
}

impl Rope {
    /// Inverse frequencies for the `head_dim / 2` rotation pairs `(i, i + head_dim/2)`; pairs past the rotated
    /// fraction get frequency 0 (identity), exactly as transformers builds them.
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f32> {
        let half = head_dim / 2;
        let rotated = match self.rope_type.as_str() {
            "proportional" => {
                ((self.partial_rotary_factor * head_dim as f64) / 2.0).floor() as usize
            }
            _ => half,
        };
        (0..half)
            .map(|i| {
                if i < rotated {
                    // transformers computes base ** (2i / dim) in f32 and inverts in f32.
                    let exponent = (2 * i) as f32 / head_dim as f32;
                    let v = 1.0f32 / (self.theta as f32).powf(exponent);
                    v / self.factor as f32
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// The text decoder's configuration (the fields of `Gemma4TextConfig` the decoder uses).
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// KV heads of full-attention layers (differs only with `attention_k_eq_v`).
    pub num_global_key_value_heads: usize,
    pub head_dim: usize,
    pub global_head_dim: usize,
    pub rms_norm_eps: f64,
    pub sliding_window: usize,
    pub layer_types: Vec<LayerKind>,
    pub final_logit_softcapping: Option<f64>,
    pub hidden_size_per_layer_input: usize,
    pub vocab_size_per_layer_input: usize,
    pub attention_k_eq_v: bool,
    pub num_kv_shared_layers: usize,
    pub enable_moe_block: bool,
    pub use_double_wide_mlp: bool,
    pub num_experts: usize,
    pub top_k_experts: usize,
    pub moe_intermediate_size: usize,
    pub rope_sliding: Rope,
    pub rope_full: Rope,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
    pub bos_token_id: u32,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: u32,
}

/// Facts about one decoder layer, derived from the config.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    pub index: usize,
    pub kind: LayerKind,
    pub head_dim: usize,
    pub kv_heads: usize,
    /// `Some(src)` when this layer has no K/V projections and reads layer `src`'s K/V (KV sharing).
    pub kv_source: Option<usize>,
    /// Whether the layer has a `v_proj` (false on k=v global layers and on KV-shared layers).
    pub has_v_proj: bool,
    pub intermediate_size: usize,
    /// Attention window in positions (`usize::MAX` for full attention).
    pub window: usize,
}

fn get<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

fn usize_or(m: &Map<String, Value>, key: &str, default: usize) -> Result<usize, EngineError> {
    match get(m, key) {
        None => Ok(default),
        Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
            EngineError::Config(format!("{key}: expected a non-negative integer, got {v}"))
        }),
    }
}

fn f64_or(m: &Map<String, Value>, key: &str, default: f64) -> Result<f64, EngineError> {
    match get(m, key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| EngineError::Config(format!("{key}: expected a number, got {v}"))),
    }
}

fn bool_or(m: &Map<String, Value>, key: &str, default: bool) -> Result<bool, EngineError> {
    match get(m, key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| EngineError::Config(format!("{key}: expected true or false, got {v}"))),
    }
}

fn parse_rope(v: Option<&Value>, kind: LayerKind) -> Result<Rope, EngineError> {
    let default = match kind {
        LayerKind::Sliding => Rope {
            rope_type: "default".into(),
            theta: 10_000.0,
            partial_rotary_factor: 1.0,
            factor: 1.0,
        },
        LayerKind::Full => Rope {
            rope_type: "proportional".into(),
            theta: 1_000_000.0,
            partial_rotary_factor: 0.25,
            factor: 1.0,
        },
    };
    let Some(obj) = v.and_then(|v| v.as_object()) else {
        return Ok(default);
    };
    let rope_type = obj
        .get("rope_type")
        .and_then(|v| v.as_str())
        .unwrap_or("default")
        .to_string();
    if rope_type != "default" && rope_type != "proportional" {
        return Err(EngineError::Config(format!(
            "rope_parameters.{}: unsupported rope_type {rope_type:?} (supported: default, proportional)",
            kind.as_str()
        )));
    }
    Ok(Rope {
        theta: f64_or(obj, "rope_theta", default.theta)?,
        partial_rotary_factor: if rope_type == "proportional" {
            f64_or(obj, "partial_rotary_factor", 1.0)?
        } else {
            1.0
        },
        factor: if rope_type == "proportional" {
            f64_or(obj, "factor", 1.0)?
        } else {
            1.0
        },
        rope_type,
    })
}

impl TextConfig {
    /// Reads `config.json` from a checkpoint folder (or the file itself).
    pub fn from_path(path: &Path) -> Result<Self, EngineError> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| EngineError::Config(format!("cannot read {}: {e}", file.display())))?;
        Self::parse(&text)
    }

    /// Parses a `gemma4` (multimodal, `text_config` inside) or `gemma4_text` config.
    pub fn parse(json_text: &str) -> Result<Self, EngineError> {
        let root: Value = serde_json::from_str(json_text)
            .map_err(|e| EngineError::Config(format!("config.json is not valid JSON: {e}")))?;
        let root = root
            .as_object()
            .ok_or_else(|| EngineError::Config("config.json: expected a JSON object".into()))?;
        let model_type = root
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let text = match model_type {
            "gemma4" => root
                .get("text_config")
                .and_then(|v| v.as_object())
                .ok_or_else(|| {
                    EngineError::Config("gemma4 config without a text_config object".into())
                })?,
            "gemma4_text" => root,
            other => {
                return Err(EngineError::Config(format!(
                    "model_type {other:?} is not supported (expected \"gemma4\" or \"gemma4_text\")"
                )))
            }
        };
        Self::from_text_map(text)
    }

    fn from_text_map(m: &Map<String, Value>) -> Result<Self, EngineError> {
        if let Some(act) = get(m, "hidden_activation").and_then(|v| v.as_str()) {
            if act != "gelu_pytorch_tanh" {
                return Err(EngineError::Config(format!(
                    "hidden_activation {act:?} is not supported (Gemma 4 uses gelu_pytorch_tanh)"
                )));
            }
        }
        if let Some(b) = get(m, "use_bidirectional_attention").and_then(|v| v.as_str()) {
            if b == "all" {
                return Err(EngineError::Config(
                    "use_bidirectional_attention = \"all\" (a non-causal decoder) is not supported"
                        .into(),
                ));
            }
        }
        if bool_or(m, "attention_bias", false)? {
            return Err(EngineError::Config(
                "attention_bias = true is not supported".into(),
            ));
        }
        let num_hidden_layers = usize_or(m, "num_hidden_layers", 30)?;
        let mut layer_types = match get(m, "layer_types") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| EngineError::Config("layer_types: expected strings".into()))
                        .and_then(LayerKind::parse)
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => {
                return Err(EngineError::Config(format!(
                    "layer_types: expected a list, got {v}"
                )))
            }
            None => (0..num_hidden_layers)
                .map(|i| {
                    if (i + 1) % 6 == 0 {
                        LayerKind::Full
                    } else {
                        LayerKind::Sliding
                    }
                })
                .collect(),
        };
        if layer_types.len() != num_hidden_layers {
            return Err(EngineError::Config(format!(
                "layer_types has {} entries but num_hidden_layers is {num_hidden_layers}",
                layer_types.len()
            )));
        }
        // transformers forces the last layer to full attention.
        if let Some(last) = layer_types.last_mut() {
            *last = LayerKind::Full;
        }
        let attention_k_eq_v = bool_or(m, "attention_k_eq_v", false)?;
        let num_key_value_heads = usize_or(m, "num_key_value_heads", 4)?;
        let head_dim = usize_or(m, "head_dim", 256)?;
        let mut global_head_dim = usize_or(m, "global_head_dim", 512)?;
        // Full-layer KV heads are overridden only with attention_k_eq_v (configuration_gemma4.py).
        let mut num_global_key_value_heads = if attention_k_eq_v {
            usize_or(m, "num_global_key_value_heads", num_key_value_heads)?
        } else {
            num_key_value_heads
        };
        // A config saved by transformers may carry the resolved per-layer overrides instead.
        if let Some(Value::Object(plc)) = get(m, "per_layer_config") {
            for (i, kind) in layer_types.iter().enumerate() {
                let Some(Value::Object(o)) = plc.get(&i.to_string()) else {
                    continue;
                };
                if *kind == LayerKind::Full {
                    global_head_dim = usize_or(o, "head_dim", global_head_dim)?;
                    num_global_key_value_heads =
                        usize_or(o, "num_key_value_heads", num_global_key_value_heads)?;
                }
            }
        }
        let rope = get(m, "rope_parameters");
        let rope_sliding = parse_rope(
            rope.and_then(|r| r.get("sliding_attention")),
            LayerKind::Sliding,
        )?;
        let rope_full = parse_rope(rope.and_then(|r| r.get("full_attention")), LayerKind::Full)?;
        let eos_token_ids = match get(m, "eos_token_id") {
            None => vec![1],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect(),
            Some(v) => vec![v.as_u64().unwrap_or(1) as u32],
        };
        let enable_moe_block = bool_or(m, "enable_moe_block", false)?;
        let cfg = TextConfig {
            vocab_size: usize_or(m, "vocab_size", 262_144)?,
            hidden_size: usize_or(m, "hidden_size", 2304)?,
            intermediate_size: usize_or(m, "intermediate_size", 9216)?,
            num_hidden_layers,
            num_attention_heads: usize_or(m, "num_attention_heads", 8)?,
            num_key_value_heads,
            num_global_key_value_heads,
            head_dim,
            global_head_dim,
            rms_norm_eps: f64_or(m, "rms_norm_eps", 1e-6)?,
            sliding_window: usize_or(m, "sliding_window", 512)?,
            layer_types,
            final_logit_softcapping: get(m, "final_logit_softcapping").and_then(|v| v.as_f64()),
            hidden_size_per_layer_input: usize_or(m, "hidden_size_per_layer_input", 256)?,
            vocab_size_per_layer_input: usize_or(m, "vocab_size_per_layer_input", 262_144)?,
            attention_k_eq_v,
            num_kv_shared_layers: usize_or(m, "num_kv_shared_layers", 0)?,
            enable_moe_block,
            use_double_wide_mlp: bool_or(m, "use_double_wide_mlp", false)?,
            num_experts: if enable_moe_block {
                usize_or(m, "num_experts", 0)?
            } else {
                0
            },
            top_k_experts: if enable_moe_block {
                usize_or(m, "top_k_experts", 0)?
            } else {
                0
            },
            moe_intermediate_size: if enable_moe_block {
                usize_or(m, "moe_intermediate_size", 0)?
            } else {
                0
            },
            rope_sliding,
            rope_full,
            tie_word_embeddings: bool_or(m, "tie_word_embeddings", true)?,
            max_position_embeddings: usize_or(m, "max_position_embeddings", 131_072)?,
            bos_token_id: usize_or(m, "bos_token_id", 2)? as u32,
            eos_token_ids,
            pad_token_id: usize_or(m, "pad_token_id", 0)? as u32,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the invariants the forward pass relies on.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |msg: String| Err(EngineError::Config(msg));
        if self.hidden_size == 0 || self.num_hidden_layers == 0 || self.vocab_size == 0 {
            return bad("hidden_size, num_hidden_layers and vocab_size must be positive".into());
        }
        for (name, kv) in [
            ("num_key_value_heads", self.num_key_value_heads),
            ("global KV heads", self.num_global_key_value_heads),
        ] {
            if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
                return bad(format!(
                    "{name} = {kv} must divide num_attention_heads = {}",
                    self.num_attention_heads
                ));
            }
        }
        if !self.head_dim.is_multiple_of(2) || !self.global_head_dim.is_multiple_of(2) {
            return bad("head dims must be even (rotary pairs)".into());
        }
        if self.num_kv_shared_layers >= self.num_hidden_layers && self.num_kv_shared_layers > 0 {
            return bad(format!(
                "num_kv_shared_layers = {} leaves no layer to own the KV cache",
                self.num_kv_shared_layers
            ));
        }
        if self.enable_moe_block
            && (self.num_experts == 0
                || self.top_k_experts == 0
                || self.top_k_experts > self.num_experts
                || self.moe_intermediate_size == 0)
        {
            return bad("enable_moe_block needs num_experts >= top_k_experts > 0 and moe_intermediate_size > 0".into());
        }
        if self.hidden_size_per_layer_input > 0 && self.vocab_size_per_layer_input == 0 {
            return bad("vocab_size_per_layer_input must be positive with per-layer inputs".into());
        }
        if self.sliding_window == 0 {
            return bad("sliding_window must be positive".into());
        }
        // Every shared layer needs an owner of its attention kind.
        for spec in self.layers() {
            if let Some(src) = spec.kv_source {
                if self.layer_types[src] != spec.kind {
                    return bad(format!(
                        "layer {} shares KV with a layer of another kind",
                        spec.index
                    ));
                }
            }
        }
        let first_shared = self.first_kv_shared_layer();
        for i in first_shared..self.num_hidden_layers {
            let kind = self.layer_types[i];
            if !self.layer_types[..first_shared].contains(&kind) {
                return bad(format!(
                    "layer {i} ({}) is KV-shared but no earlier layer of that kind owns a KV cache",
                    kind.as_str()
                ));
            }
        }
        Ok(())
    }

    pub fn first_kv_shared_layer(&self) -> usize {
        self.num_hidden_layers - self.num_kv_shared_layers
    }

    pub fn has_ple(&self) -> bool {
        self.hidden_size_per_layer_input > 0
    }

    /// Per-layer facts (head dims, KV heads, KV owner, MLP width, window).
    pub fn layers(&self) -> Vec<LayerSpec> {
        let first_shared = self.first_kv_shared_layer();
        (0..self.num_hidden_layers)
            .map(|i| {
                let kind = self.layer_types[i];
                let (head_dim, kv_heads) = match kind {
                    LayerKind::Sliding => (self.head_dim, self.num_key_value_heads),
                    LayerKind::Full => (self.global_head_dim, self.num_global_key_value_heads),
                };
                let shared = self.num_kv_shared_layers > 0 && i >= first_shared;
                // The owner is the last non-shared layer of the same kind (modeling_gemma4.py).
                let kv_source = if shared {
                    (0..first_shared)
                        .rev()
                        .find(|&j| self.layer_types[j] == kind)
                } else {
                    None
                };
                let k_eq_v = self.attention_k_eq_v && kind == LayerKind::Full;
                let double = self.use_double_wide_mlp && shared;
                LayerSpec {
                    index: i,
                    kind,
                    head_dim,
                    kv_heads,
                    kv_source,
                    has_v_proj: !shared && !k_eq_v,
                    intermediate_size: self.intermediate_size * if double { 2 } else { 1 },
                    window: match kind {
                        LayerKind::Sliding => self.sliding_window,
                        LayerKind::Full => usize::MAX,
                    },
                }
            })
            .collect()
    }

    pub fn rope(&self, kind: LayerKind) -> &Rope {
        match kind {
            LayerKind::Sliding => &self.rope_sliding,
            LayerKind::Full => &self.rope_full,
        }
    }

    /// The config as a `gemma4_text` `config.json` that transformers (>= 5.5) and this engine both load.
    pub fn to_json(&self) -> Value {
        let rope = |r: &Rope| {
            let mut o = json!({"rope_type": r.rope_type, "rope_theta": r.theta});
            if r.rope_type == "proportional" {
                o["partial_rotary_factor"] = json!(r.partial_rotary_factor);
                if r.factor != 1.0 {
                    o["factor"] = json!(r.factor);
                }
            }
            o
        };
        let mut v = json!({
            "architectures": ["Gemma4ForCausalLM"],
            "model_type": "gemma4_text",
            "dtype": "bfloat16",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "global_head_dim": self.global_head_dim,
            "hidden_activation": "gelu_pytorch_tanh",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "sliding_window": self.sliding_window,
            "layer_types": self.layer_types.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "final_logit_softcapping": self.final_logit_softcapping,
            "hidden_size_per_layer_input": self.hidden_size_per_layer_input,
            "vocab_size_per_layer_input": self.vocab_size_per_layer_input,
            "attention_k_eq_v": self.attention_k_eq_v,
            "num_kv_shared_layers": self.num_kv_shared_layers,
            "enable_moe_block": self.enable_moe_block,
            "use_double_wide_mlp": self.use_double_wide_mlp,
            "rope_parameters": {
                "sliding_attention": rope(&self.rope_sliding),
                "full_attention": rope(&self.rope_full),
            },
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": false,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_ids,
            "pad_token_id": self.pad_token_id,
            "use_cache": true,
        });
        if self.attention_k_eq_v {
            v["num_global_key_value_heads"] = json!(self.num_global_key_value_heads);
        }
        if self.enable_moe_block {
            v["num_experts"] = json!(self.num_experts);
            v["top_k_experts"] = json!(self.top_k_experts);
            v["moe_intermediate_size"] = json!(self.moe_intermediate_size);
        }
        v
    }
}

/// The official Gemma 4 families (text decoders), for `--synthetic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    E2B,
    E4B,
    B12,
    A4B26,
    B31,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::E2B,
        Family::E4B,
        Family::B12,
        Family::A4B26,
        Family::B31,
    ];

    pub fn parse(s: &str) -> Result<Self, EngineError> {
        match s.to_ascii_lowercase().trim_start_matches("gemma-4-") {
            "e2b" => Ok(Self::E2B),
            "e4b" => Ok(Self::E4B),
            "12b" => Ok(Self::B12),
            "26b-a4b" | "26b" | "a4b" => Ok(Self::A4B26),
            "31b" => Ok(Self::B31),
            _ => Err(EngineError::Config(format!(
                "unknown family {s:?} (expected one of e2b, e4b, 12b, 26b-a4b, 31b)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::E2B => "e2b",
            Self::E4B => "e4b",
            Self::B12 => "12b",
            Self::A4B26 => "26b-a4b",
            Self::B31 => "31b",
        }
    }

    /// The family's text config (convert_gemma4_weights.py `_VARIANTS`; 12B from the reference table).
    pub fn config(self) -> TextConfig {
        let pattern = |sliding: usize, reps: usize| {
            let mut v = Vec::new();
            for _ in 0..reps {
                v.extend(std::iter::repeat_n(LayerKind::Sliding, sliding));
                v.push(LayerKind::Full);
            }
            v
        };
        let base = TextConfig {
            vocab_size: 262_144,
            hidden_size: 0,
            intermediate_size: 0,
            num_hidden_layers: 0,
            num_attention_heads: 0,
            num_key_value_heads: 0,
            num_global_key_value_heads: 0,
            head_dim: 256,
            global_head_dim: 512,
            rms_norm_eps: 1e-6,
            sliding_window: 512,
            layer_types: vec![],
            final_logit_softcapping: Some(30.0),
            hidden_size_per_layer_input: 0,
            vocab_size_per_layer_input: 262_144,
            attention_k_eq_v: false,
            num_kv_shared_layers: 0,
            enable_moe_block: false,
            use_double_wide_mlp: false,
            num_experts: 0,
            top_k_experts: 0,
            moe_intermediate_size: 0,
            rope_sliding: parse_rope(None, LayerKind::Sliding).expect("default rope"),
            rope_full: parse_rope(None, LayerKind::Full).expect("default rope"),
            tie_word_embeddings: true,
            max_position_embeddings: 131_072,
            bos_token_id: 2,
            eos_token_ids: vec![1],
            pad_token_id: 0,
        };
        let c = match self {
            Self::E2B => TextConfig {
                hidden_size: 1536,
                intermediate_size: 6144,
                num_hidden_layers: 35,
                layer_types: pattern(4, 7),
                num_attention_heads: 8,
                num_key_value_heads: 1,
                num_global_key_value_heads: 1,
                hidden_size_per_layer_input: 256,
                num_kv_shared_layers: 20,
                use_double_wide_mlp: true,
                ..base
            },
            Self::E4B => TextConfig {
                hidden_size: 2560,
                intermediate_size: 10240,
                num_hidden_layers: 42,
                layer_types: pattern(5, 7),
                num_attention_heads: 8,
                num_key_value_heads: 2,
                num_global_key_value_heads: 2,
                hidden_size_per_layer_input: 256,
                num_kv_shared_layers: 18,
                ..base
            },
            Self::B12 => TextConfig {
                hidden_size: 3840,
                intermediate_size: 15360,
                num_hidden_layers: 48,
                layer_types: pattern(5, 8),
                num_attention_heads: 16,
                num_key_value_heads: 8,
                num_global_key_value_heads: 1,
                attention_k_eq_v: true,
                sliding_window: 1024,
                max_position_embeddings: 262_144,
                ..base
            },
            Self::A4B26 => TextConfig {
                hidden_size: 2816,
                intermediate_size: 2112,
                num_hidden_layers: 30,
                layer_types: pattern(5, 5),
                num_attention_heads: 16,
                num_key_value_heads: 8,
                num_global_key_value_heads: 2,
                attention_k_eq_v: true,
                enable_moe_block: true,
                num_experts: 128,
                top_k_experts: 8,
                moe_intermediate_size: 704,
                sliding_window: 1024,
                max_position_embeddings: 262_144,
                ..base
            },
            Self::B31 => TextConfig {
                hidden_size: 5376,
                intermediate_size: 21504,
                num_hidden_layers: 60,
                layer_types: pattern(5, 10),
                num_attention_heads: 32,
                num_key_value_heads: 16,
                num_global_key_value_heads: 4,
                attention_k_eq_v: true,
                sliding_window: 1024,
                max_position_embeddings: 262_144,
                ..base
            },
        };
        debug_assert!(c.validate().is_ok());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4b_layer_facts() {
        let c = Family::E4B.config();
        let l = c.layers();
        assert_eq!(l.len(), 42);
        assert_eq!(l[5].kind, LayerKind::Full);
        assert_eq!(l[5].head_dim, 512);
        assert_eq!(l[0].head_dim, 256);
        // 42 - 18 = 24: layers 24.. share; owners are the last sliding (22) and full (23) layers before 24.
        assert_eq!(l[23].kv_source, None);
        assert_eq!(l[24].kv_source, Some(22));
        assert_eq!(l[29].kv_source, Some(23));
        assert_eq!(l[41].kv_source, Some(23));
        assert!(!l[24].has_v_proj);
    }

    #[test]
    fn proportional_rope_rotates_a_quarter() {
        let c = Family::E4B.config();
        let f = c.rope_full.inv_freq(512);
        assert_eq!(f.len(), 256);
        assert_eq!(f.iter().filter(|&&x| x != 0.0).count(), 64);
        assert_eq!(f[0], 1.0);
        let s = c.rope_sliding.inv_freq(256);
        assert!(s.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn json_round_trip_and_errors() {
        for fam in Family::ALL {
            let c = fam.config();
            let back = TextConfig::parse(&c.to_json().to_string()).unwrap();
            assert_eq!(back, c, "{fam:?}");
        }
        let nested = json!({"model_type": "gemma4", "text_config": Family::E2B.config().to_json()});
        assert_eq!(
            TextConfig::parse(&nested.to_string()).unwrap(),
            Family::E2B.config()
        );
        let err = TextConfig::parse(r#"{"model_type":"llama"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("llama"), "{err}");
        let mut bad = Family::E4B.config().to_json();
        bad["rope_parameters"]["full_attention"]["rope_type"] = json!("yarn");
        let err = TextConfig::parse(&bad.to_string()).unwrap_err().to_string();
        assert!(err.contains("yarn"), "{err}");
    }
}
