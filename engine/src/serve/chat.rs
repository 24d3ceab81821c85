//! The model's chat template (`chat_template` in `tokenizer_config.json`, Jinja) rendered with `minijinja`,
//! with the variables transformers' `apply_chat_template` passes: `messages`, `add_generation_prompt`,
//! `bos_token`, `eos_token` and `raise_exception`, and the same whitespace control (`trim_blocks`,
//! `lstrip_blocks`).

use std::path::Path;

use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value;

use crate::error::{EngineError, Result};

const TEMPLATE: &str = "chat";

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// What `tokenizer_config.json` says about chat and special tokens.
pub struct TokenizerConfig {
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

impl TokenizerConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(TokenizerConfig {
                chat_template: None,
                bos_token: None,
                eos_token: None,
            });
        }
        let text = std::fs::read_to_string(path)?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::Input(format!("{}: {e}", path.display())))?;
        // A token is a string or an AddedToken object with `content`.
        let token = |k: &str| match &v[k] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
            _ => None,
        };
        // The template is a string, or a list of named templates of which "default" is the chat one.
        let chat_template = match &v["chat_template"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(list) => list
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(String::from),
            _ => None,
        };
        Ok(TokenizerConfig {
            chat_template,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
        })
    }
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        // transformers compiles chat templates with trim_blocks and lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned(TEMPLATE, source.to_string())
            .map_err(|e| EngineError::Input(format!("chat_template does not compile: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The prompt text for `messages` (each `{role, content}`), ending with the generation prompt.
    /// An error is the template's own complaint (e.g. roles that do not alternate).
    pub fn render(&self, messages: &[Value]) -> std::result::Result<String, String> {
        let t = self.env.get_template(TEMPLATE).expect("added at new");
        t.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| match e.detail() {
            Some(d) => d.to_string(),
            None => e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GEMMA_LIKE: &str = "{{ bos_token }}{% for m in messages %}{% if (m['role'] == 'user') != \
        (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}\
        <start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] | trim }}\
        <end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

    #[test]
    fn renders_messages_with_bos_and_generation_prompt() {
        let t = ChatTemplate::new(GEMMA_LIKE, "<bos>", "<eos>").unwrap();
        let out = t
            .render(&[
                json!({"role": "user", "content": " hi "}),
                json!({"role": "assistant", "content": "hello"}),
                json!({"role": "user", "content": "more"}),
            ])
            .unwrap();
        assert_eq!(
            out,
            "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nhello<end_of_turn>\n\
             <start_of_turn>user\nmore<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn the_templates_own_errors_come_back() {
        let t = ChatTemplate::new(GEMMA_LIKE, "<bos>", "<eos>").unwrap();
        let err = t
            .render(&[json!({"role": "assistant", "content": "x"})])
            .unwrap_err();
        assert!(err.contains("Conversation roles must alternate"), "{err}");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new("{{ messages[0]['content'].strip().upper() }}", "", "").unwrap();
        assert_eq!(
            t.render(&[json!({"role": "user", "content": " ab "})])
                .unwrap(),
            "AB"
        );
    }
}
