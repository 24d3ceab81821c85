//! The private-preview request form's outcome types and the form's reading of the one validator
//! ([`vkae_domain::PreviewInput::validate`]), which runs in the browser (so a visitor sees a field's problem
//! before sending), in the site's server function (which never trusts the browser) and in the evidence store.

use serde::{Deserialize, Serialize};
pub use vkae_domain::preview::MESSAGE_MAX_CHARS;
pub use vkae_domain::{PreviewChoices, PreviewInput};

/// A problem with one field, named by its form field name, in the form's wording.
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

/// The form's problems with `input`; empty when it may be sent. The form's empty family and GPU choice means
/// "not sure yet" (the store's `undecided`).
pub fn form_errors(input: &PreviewInput, choices: &PreviewChoices) -> Vec<FieldError> {
    match input.clone().with_undecided_defaults().validate(choices) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .iter()
            .map(|p| FieldError {
                field: p.field.to_string(),
                message: p.form_message(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> PreviewChoices {
        PreviewChoices {
            service_paths: vec!["managed-endpoint".into()],
            families: vec!["E4B".into()],
            gpus: vec!["l40s".into()],
        }
    }

    fn good() -> PreviewInput {
        PreviewInput {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            company: "Analytical Engines".into(),
            service_path: "managed-endpoint".into(),
            model_family: "E4B".into(),
            gpu: "l40s".into(),
            message: "Batch 8 chat serving".into(),
            ..PreviewInput::default()
        }
    }

    fn fields(input: &PreviewInput) -> Vec<String> {
        form_errors(input, &choices())
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn accepts_a_complete_request_and_an_empty_choice_as_not_sure_yet() {
        assert!(fields(&good()).is_empty());
        let not_sure = PreviewInput {
            model_family: String::new(),
            gpu: String::new(),
            ..good()
        };
        assert!(fields(&not_sure).is_empty());
    }

    #[test]
    fn names_each_bad_field_in_the_forms_words() {
        let input = PreviewInput {
            name: " ".into(),
            email: "ada@localhost".into(),
            service_path: "free-lunch".into(),
            model_family: "E9B".into(),
            message: "x".repeat(MESSAGE_MAX_CHARS + 1),
            ..good()
        };
        let errors = form_errors(&input, &choices());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "email", "service_path", "model_family", "message"]
        );
        assert_eq!(errors[0].message, "Your name is required.");
        assert!(errors[1].message.contains("work email"), "{errors:?}");
        assert_eq!(errors[3].message, "`E9B` is not a Gemma 4 family we list.");
    }
}
