//! The private-preview request form's fields and their validation. The same code runs in the browser (so a
//! visitor sees a field's problem before sending) and on the server (which never trusts the browser); the
//! evidence store validates once more when it stores the request.

use serde::{Deserialize, Serialize};

/// The longest message the form accepts, in characters.
pub const MESSAGE_MAX_CHARS: usize = 2000;
/// The longest name or company, in characters.
pub const SHORT_FIELD_MAX_CHARS: usize = 200;

/// The five service paths, as (slug, label). The slugs are the evidence API's.
pub const SERVICE_PATHS: [(&str, &str); 5] = [
    ("report", "Acceleration report"),
    ("managed-endpoint", "Managed endpoint"),
    ("private-docker", "Private Docker evaluation"),
    ("on-prem", "Enterprise on-prem"),
    ("custom-build", "Custom engine build"),
];

/// What a visitor typed, exactly as typed (so it can be shown again after an error). A field left out of a
/// request reads as empty, so validation (not parsing) names it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreviewInput {
    pub name: String,
    pub email: String,
    pub company: String,
    pub service_path: String,
    pub model_family: String,
    pub gpu: String,
    pub message: String,
    /// Left empty by people; bots fill it.
    pub website: String,
}

/// A problem with one field, named by its form field name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The result of sending the form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PreviewOutcome {
    Accepted {
        reference: String,
    },
    Invalid {
        errors: Vec<FieldError>,
    },
    /// Too many requests from this client; try again after this many seconds.
    RateLimited {
        retry_after_s: u64,
    },
}

impl PreviewInput {
    /// Checks every field; an empty list means the input may be sent. `families` and `gpus` are the names
    /// the catalog knows (an empty string means "not sure yet" and is allowed).
    pub fn validate(&self, families: &[String], gpus: &[String]) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_string(),
                message,
            })
        };
        check_short(&self.name, "Your name")
            .map_err(|m| fail("name", m))
            .ok();
        if let Err(m) = check_email(&self.email) {
            fail("email", m);
        }
        check_short(&self.company, "Company")
            .map_err(|m| fail("company", m))
            .ok();
        if !SERVICE_PATHS
            .iter()
            .any(|(slug, _)| *slug == self.service_path)
        {
            fail(
                "service_path",
                "Choose one of the five service paths.".to_string(),
            );
        }
        if !self.model_family.is_empty() && !families.contains(&self.model_family) {
            fail(
                "model_family",
                format!("`{}` is not a Gemma 4 family we list.", self.model_family),
            );
        }
        if !self.gpu.is_empty() && !gpus.contains(&self.gpu) {
            fail("gpu", format!("`{}` is not a GPU lane we list.", self.gpu));
        }
        let chars = self.message.chars().count();
        if chars > MESSAGE_MAX_CHARS {
            fail(
                "message",
                format!("Keep the message to {MESSAGE_MAX_CHARS} characters (it has {chars})."),
            );
        }
        errors
    }
}

fn check_short(value: &str, what: &str) -> Result<(), String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(format!("{what} is required."));
    }
    if trimmed.chars().count() > SHORT_FIELD_MAX_CHARS {
        return Err(format!(
            "{what} must be at most {SHORT_FIELD_MAX_CHARS} characters."
        ));
    }
    Ok(())
}

/// A work email: one `@`, a local part, and a domain with a dot and no spaces.
fn check_email(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("Work email is required.".to_string());
    }
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err("Enter a work email such as name@company.com.".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> PreviewInput {
        PreviewInput {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            company: "Analytical Engines".into(),
            service_path: "managed-endpoint".into(),
            model_family: "E4B".into(),
            gpu: "L40S".into(),
            message: "Batch 8 chat serving".into(),
            website: String::new(),
        }
    }

    fn fields(input: &PreviewInput) -> Vec<String> {
        input
            .validate(&["E4B".into()], &["L40S".into()])
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn accepts_a_complete_request() {
        assert!(fields(&good()).is_empty());
    }

    #[test]
    fn names_each_bad_field() {
        let input = PreviewInput {
            name: " ".into(),
            email: "ada@localhost".into(),
            service_path: "free-lunch".into(),
            model_family: "E9B".into(),
            message: "x".repeat(MESSAGE_MAX_CHARS + 1),
            ..good()
        };
        assert_eq!(
            fields(&input),
            ["name", "email", "service_path", "model_family", "message"]
        );
    }

    #[test]
    fn rejects_malformed_emails() {
        for email in [
            "",
            "ada",
            "@x.com",
            "ada@.com",
            "ada@x.",
            "a b@x.com",
            "a@b@c.com",
        ] {
            let input = PreviewInput {
                email: email.into(),
                ..good()
            };
            assert_eq!(fields(&input), ["email"], "{email:?}");
        }
    }
}
