//! The request bodies of `/v1/completions` and `/v1/chat/completions` and their checks: every field the
//! OpenAI API defines is accepted where its value is one this server honours (others get a 400 naming the
//! field), unknown fields are rejected, and a request that passes becomes a [`Generation`] the scheduler
//! can run as it is.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::sampling::SamplingParams;
use super::text::TextModel;

/// OpenAI's legacy completions default.
pub const DEFAULT_COMPLETION_TOKENS: usize = 16;
/// OpenAI allows up to four stop sequences.
pub const MAX_STOPS: usize = 4;

/// A request body with the members both endpoints share, plus the endpoint's own. (serde's `flatten` cannot
/// share them: it does not combine with `deny_unknown_fields`.)
macro_rules! openai_request {
    ($(#[$doc:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$doc])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub model: String,
            pub max_tokens: Option<u64>,
            pub temperature: Option<f64>,
            pub top_p: Option<f64>,
            pub seed: Option<u64>,
            pub stop: Option<Value>,
            pub stream: Option<bool>,
            pub stream_options: Option<StreamOptions>,
            pub n: Option<u64>,
            pub frequency_penalty: Option<f64>,
            pub presence_penalty: Option<f64>,
            pub logit_bias: Option<serde_json::Map<String, Value>>,
            pub user: Option<String>,
            /// vLLM's extension: keep generating past EOS (benchmarks with fixed output lengths).
            pub ignore_eos: Option<bool>,
            $($own)*
        }

        impl $name {
            /// The shared members as [`common`] reads them, with the endpoint's own token limit.
            fn shared(&self, max_tokens: Option<u64>, default_max_tokens: Option<usize>) -> Common<'_> {
                Common {
                    max_tokens,
                    default_max_tokens,
                    temperature: self.temperature,
                    top_p: self.top_p,
                    seed: self.seed,
                    stop: self.stop.as_ref(),
                    stream: self.stream,
                    stream_options: self.stream_options.as_ref(),
                    frequency_penalty: self.frequency_penalty,
                    presence_penalty: self.presence_penalty,
                    logit_bias: self.logit_bias.as_ref(),
                    ignore_eos: self.ignore_eos,
                }
            }
        }
    };
}

openai_request!(
    /// `/v1/completions`.
    CompletionRequest {
        pub prompt: Value,
        pub best_of: Option<u64>,
        pub echo: Option<bool>,
        pub logprobs: Option<u64>,
        pub suffix: Option<String>,
    }
);

openai_request!(
    /// `/v1/chat/completions`.
    ChatRequest {
        pub messages: Vec<ChatMessage>,
        pub max_completion_tokens: Option<u64>,
        pub logprobs: Option<bool>,
        pub top_logprobs: Option<u64>,
    }
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: String,
    /// A string, or an array of `{"type": "text", "text": ...}` parts.
    pub content: Value,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// What the server was asked to generate, checked against the model.
#[derive(Debug)]
pub struct Generation {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stops: Vec<String>,
    pub ignore_eos: bool,
    pub stream: bool,
    pub include_usage: bool,
}

/// The served model's limits a request is checked against.
pub struct ModelLimits<'a> {
    pub name: &'a str,
    pub vocab_size: usize,
    /// Positions per request: prompt plus generated tokens.
    pub context: usize,
    pub text: &'a TextModel,
}

/// Parses a JSON body; the 400 names the field that is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(None, format!("the body is not valid JSON: {inner}"));
        }
        let msg = inner.to_string();
        let path = e.path().to_string();
        let param = (path != ".").then_some(path);
        ApiError::invalid(param.as_deref(), msg)
    })
}

impl CompletionRequest {
    pub fn check(self, m: &ModelLimits) -> Result<Generation, ApiError> {
        check_model(&self.model, m)?;
        unsupported(
            "n",
            self.n.is_some_and(|n| n != 1),
            "only n = 1 is supported",
        )?;
        unsupported(
            "best_of",
            self.best_of.is_some_and(|n| n != 1),
            "only best_of = 1 is supported",
        )?;
        unsupported("echo", self.echo == Some(true), "echo is not supported")?;
        unsupported(
            "logprobs",
            self.logprobs.is_some(),
            "logprobs are not supported",
        )?;
        unsupported("suffix", self.suffix.is_some(), "suffix is not supported")?;
        let prompt = completion_prompt(&self.prompt, m)?;
        common(
            prompt,
            "prompt",
            self.shared(self.max_tokens, Some(DEFAULT_COMPLETION_TOKENS)),
            m,
        )
    }
}

impl ChatRequest {
    pub fn check(self, m: &ModelLimits) -> Result<Generation, ApiError> {
        check_model(&self.model, m)?;
        unsupported(
            "n",
            self.n.is_some_and(|n| n != 1),
            "only n = 1 is supported",
        )?;
        unsupported(
            "logprobs",
            self.logprobs == Some(true),
            "logprobs are not supported",
        )?;
        unsupported(
            "top_logprobs",
            self.top_logprobs.is_some(),
            "logprobs are not supported",
        )?;
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                Some("messages"),
                "messages must not be empty",
            ));
        }
        let mut msgs = Vec::with_capacity(self.messages.len());
        for (i, msg) in self.messages.iter().enumerate() {
            if !["system", "user", "assistant", "developer"].contains(&msg.role.as_str()) {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].role")),
                    format!(
                        "role {:?}: expected system, developer, user or assistant",
                        msg.role
                    ),
                ));
            }
            let content_ok = match &msg.content {
                Value::String(_) => true,
                Value::Array(parts) => parts
                    .iter()
                    .all(|p| p["type"] == "text" && p["text"].is_string()),
                _ => false,
            };
            if !content_ok {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].content")),
                    "content must be a string or an array of {\"type\": \"text\", \"text\": ...} parts",
                ));
            }
            // The template sees `system` for OpenAI's `developer` role.
            let role = if msg.role == "developer" {
                "system"
            } else {
                &msg.role
            };
            msgs.push(serde_json::json!({"role": role, "content": msg.content}));
        }
        let prompt = m
            .text
            .chat_prompt(&msgs)
            .map_err(|e| ApiError::invalid(Some("messages"), e))?;
        common(
            prompt,
            "messages",
            self.shared(self.max_completion_tokens.or(self.max_tokens), None),
            m,
        )
    }
}

fn check_model(asked: &str, m: &ModelLimits) -> Result<(), ApiError> {
    if asked != m.name {
        return Err(ApiError::model_not_found(asked, m.name));
    }
    Ok(())
}

fn unsupported(param: &str, bad: bool, message: &str) -> Result<(), ApiError> {
    if bad {
        return Err(ApiError::invalid(Some(param), message));
    }
    Ok(())
}

/// A string, an array of token ids, or a one-element array of either.
fn completion_prompt(v: &Value, m: &ModelLimits) -> Result<Vec<u32>, ApiError> {
    let bad = |msg: String| ApiError::invalid(Some("prompt"), msg);
    let ids = match v {
        Value::String(s) => m.text.encode_prompt(s).map_err(bad)?,
        Value::Array(items) if items.len() == 1 && !items[0].is_number() => {
            return completion_prompt(&items[0], m);
        }
        Value::Array(items) => items
            .iter()
            .map(|t| match t.as_u64() {
                Some(id) if (id as usize) < m.vocab_size => Ok(id as u32),
                Some(id) => Err(bad(format!(
                    "token id {id} is outside the vocabulary (size {})",
                    m.vocab_size
                ))),
                None => Err(bad(format!(
                    "expected a string or an array of token ids; found {t} in the array"
                ))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(bad(format!(
                "expected a string or an array of token ids, got {}",
                json_kind(other)
            )))
        }
    };
    Ok(ids)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Common<'a> {
    max_tokens: Option<u64>,
    /// None: the rest of the context.
    default_max_tokens: Option<usize>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    stop: Option<&'a Value>,
    stream: Option<bool>,
    stream_options: Option<&'a StreamOptions>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    logit_bias: Option<&'a serde_json::Map<String, Value>>,
    ignore_eos: Option<bool>,
}

fn common(
    prompt: Vec<u32>,
    prompt_param: &str,
    c: Common,
    m: &ModelLimits,
) -> Result<Generation, ApiError> {
    unsupported(
        "frequency_penalty",
        c.frequency_penalty.is_some_and(|p| p != 0.0),
        "frequency_penalty is not supported (only 0)",
    )?;
    unsupported(
        "presence_penalty",
        c.presence_penalty.is_some_and(|p| p != 0.0),
        "presence_penalty is not supported (only 0)",
    )?;
    unsupported(
        "logit_bias",
        c.logit_bias.is_some_and(|b| !b.is_empty()),
        "logit_bias is not supported",
    )?;
    if prompt.is_empty() {
        return Err(ApiError::invalid(Some(prompt_param), "the prompt is empty"));
    }
    if prompt.len() >= m.context {
        return Err(ApiError::invalid(
            Some(prompt_param),
            format!(
                "the prompt is {} tokens, which leaves no room in the context of {} tokens",
                prompt.len(),
                m.context
            ),
        ));
    }
    let room = m.context - prompt.len();
    let max_tokens = match c.max_tokens {
        Some(0) => return Err(ApiError::invalid(Some("max_tokens"), "max_tokens must be at least 1")),
        Some(n) if n as usize > room => {
            return Err(ApiError::invalid(
                Some("max_tokens"),
                format!(
                    "max_tokens {n} plus the prompt's {} tokens exceed the context of {} tokens (at most {room})",
                    prompt.len(),
                    m.context
                ),
            ))
        }
        Some(n) => n as usize,
        None => c.default_max_tokens.map_or(room, |d| d.min(room)),
    };
    let temperature = c.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            Some("temperature"),
            "temperature must be between 0 and 2",
        ));
    }
    let top_p = c.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(Some("top_p"), "top_p must be in (0, 1]"));
    }
    let stops = match c.stop {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= MAX_STOPS && a.iter().all(|s| s.is_string()) => a
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("stop"),
                format!("stop must be a string or an array of at most {MAX_STOPS} strings"),
            ))
        }
    };
    if stops.iter().any(|s| s.is_empty()) {
        return Err(ApiError::invalid(
            Some("stop"),
            "stop sequences must not be empty",
        ));
    }
    if !stops.is_empty() && m.text.tokenizer.is_none() {
        return Err(ApiError::invalid(
            Some("stop"),
            "stop sequences need text and this model has no tokenizer",
        ));
    }
    let stream = c.stream.unwrap_or(false);
    if c.stream_options.is_some() && !stream {
        return Err(ApiError::invalid(
            Some("stream_options"),
            "stream_options needs stream = true",
        ));
    }
    Ok(Generation {
        prompt,
        max_tokens,
        sampling: SamplingParams {
            temperature: temperature as f32,
            top_p: top_p as f32,
            seed: c.seed,
        },
        stops,
        ignore_eos: c.ignore_eos.unwrap_or(false),
        stream,
        include_usage: c
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    })
}
