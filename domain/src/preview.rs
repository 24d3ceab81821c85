//! The private-preview request: what a visitor sends, its field limits, and the one validator. The browser runs
//! it (so a visitor sees a problem before sending), the site's server function runs it (it never trusts the
//! browser) and the store runs it before storing. Each problem has two wordings: the form's, for visitors, and
//! the API's, in the JSON error.

use serde::{Deserialize, Serialize};

/// The longest name or company, in characters.
pub const SHORT_FIELD_MAX_CHARS: usize = 200;
/// The longest message, in characters.
pub const MESSAGE_MAX_CHARS: usize = 2000;
/// The longest email address, in bytes (RFC 5321's path limit).
pub const EMAIL_MAX_BYTES: usize = 254;
/// The value of `model_family` and `gpu` for "not sure yet", besides catalog ids.
pub const UNDECIDED: &str = "undecided";
/// The honeypot field: hidden from people by the form, filled by bots.
pub const HONEYPOT_FIELD: &str = "website";

/// Free mail domains: a preview request needs a work email.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "naver.com",
    "hanmail.net",
    "web.de",
    "zoho.com",
];

/// A request exactly as sent (JSON or form-encoded), so it can be shown again after an error. Every field is a
/// string and a field left out reads as empty, so validation (not parsing) names it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviewInput {
    pub name: String,
    pub email: String,
    pub company: String,
    pub service_path: String,
    pub model_family: String,
    pub gpu: String,
    pub message: String,
    /// The honeypot ([`HONEYPOT_FIELD`]): left empty by people; bots fill it.
    pub website: String,
    /// Present when a browser form posts it; validation ignores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// What the catalog offers: the values `service_path`, `model_family` and `gpu` may take.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreviewChoices {
    pub service_paths: Vec<String>,
    pub families: Vec<String>,
    pub gpus: Vec<String>,
}

/// A validated request, trimmed (and the email lower-cased), ready to store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidPreview {
    pub name: String,
    pub email: String,
    pub company: String,
    pub service_path: String,
    pub model_family: String,
    pub gpu: String,
    pub message: String,
}

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    Required,
    TooLong {
        max: usize,
        chars: usize,
    },
    ControlCharacters,
    /// A bidirectional override or isolate, or an invisible (zero-width) character.
    InvisibleCharacters,
    InvalidEmail,
    PersonalEmail {
        domain: String,
    },
    /// Not one of the catalog's values (`choices`, in catalog order).
    NotAChoice {
        value: String,
        choices: Vec<String>,
    },
}

/// A problem with one field, named by its form (and JSON) field name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewProblem {
    pub field: &'static str,
    pub kind: ProblemKind,
}

impl PreviewProblem {
    /// The wording of the JSON API's 422.
    pub fn api_message(&self) -> String {
        let field = self.field;
        match &self.kind {
            ProblemKind::Required if field == "email" => {
                "a valid work email address is required".to_string()
            }
            ProblemKind::Required => format!("{field} is required"),
            ProblemKind::TooLong { max, .. } => format!("{field} is at most {max} characters"),
            ProblemKind::ControlCharacters => {
                format!("{field} may not contain control characters")
            }
            ProblemKind::InvisibleCharacters => format!(
                "{field} may not contain invisible or text-direction characters (such as U+200B or U+202E)"
            ),
            ProblemKind::InvalidEmail => "a valid work email address is required".to_string(),
            ProblemKind::PersonalEmail { domain } => {
                format!("please use a work email address ({domain} is a personal mail provider)")
            }
            ProblemKind::NotAChoice { choices, .. } if field == "service_path" => {
                format!("one of {}", choices.join(", "))
            }
            ProblemKind::NotAChoice { choices, .. } => {
                format!("one of {} or {UNDECIDED}", choices.join(", "))
            }
        }
    }

    /// The wording the preview form shows beside the field.
    pub fn form_message(&self) -> String {
        let what = match self.field {
            "name" => "Your name",
            "company" => "Company",
            "email" => "Work email",
            "message" => "The message",
            other => other,
        };
        match &self.kind {
            ProblemKind::Required => format!("{what} is required."),
            ProblemKind::TooLong { max, chars } if self.field == "message" => {
                format!("Keep the message to {max} characters (it has {chars}).")
            }
            ProblemKind::TooLong { max, .. } => format!("{what} must be at most {max} characters."),
            ProblemKind::ControlCharacters => format!("{what} may not contain control characters."),
            ProblemKind::InvisibleCharacters => {
                format!("{what} may not contain invisible or text-direction characters.")
            }
            ProblemKind::InvalidEmail => "Enter a work email such as name@company.com.".to_string(),
            ProblemKind::PersonalEmail { domain } => {
                format!("Use your work email ({domain} is a personal mail provider).")
            }
            ProblemKind::NotAChoice { .. } if self.field == "service_path" => {
                "Choose one of the service paths.".to_string()
            }
            ProblemKind::NotAChoice { value, .. } if self.field == "model_family" => {
                format!("`{value}` is not a Gemma 4 family we list.")
            }
            ProblemKind::NotAChoice { value, .. } => {
                format!("`{value}` is not a GPU lane we list.")
            }
        }
    }
}

impl PreviewInput {
    /// The form's empty "not sure yet" choice of family and GPU, written as [`UNDECIDED`].
    pub fn with_undecided_defaults(mut self) -> PreviewInput {
        for value in [&mut self.model_family, &mut self.gpu] {
            if value.trim().is_empty() {
                *value = UNDECIDED.to_string();
            }
        }
        self
    }

    /// Checks every field, in form order. `Err` lists each field's first problem.
    pub fn validate(&self, choices: &PreviewChoices) -> Result<ValidPreview, Vec<PreviewProblem>> {
        let mut problems = Vec::new();
        let mut check = |field: &'static str, result: Result<String, ProblemKind>| match result {
            Ok(value) => value,
            Err(kind) => {
                problems.push(PreviewProblem { field, kind });
                String::new()
            }
        };
        let name = check("name", short_text(&self.name));
        let email = check("email", work_email(&self.email));
        let company = check("company", short_text(&self.company));
        let service_path = check(
            "service_path",
            choice(&self.service_path, &choices.service_paths, false),
        );
        let model_family = check(
            "model_family",
            choice(&self.model_family, &choices.families, true),
        );
        let gpu = check("gpu", choice(&self.gpu, &choices.gpus, true));
        let message = check("message", message(&self.message));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ValidPreview {
            name,
            email,
            company,
            service_path,
            model_family,
            gpu,
            message,
        })
    }
}

/// A problem with one field, named by its form field name, in the form's wording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The form's problems with `input`; empty when it may be sent. The form's empty family and GPU choice means
/// "not sure yet" ([`UNDECIDED`]).
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

fn short_text(value: &str) -> Result<String, ProblemKind> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ProblemKind::Required);
    }
    let chars = v.chars().count();
    if chars > SHORT_FIELD_MAX_CHARS {
        return Err(ProblemKind::TooLong {
            max: SHORT_FIELD_MAX_CHARS,
            chars,
        });
    }
    if v.chars().any(char::is_control) {
        return Err(ProblemKind::ControlCharacters);
    }
    if v.chars().any(is_invisible_or_bidi) {
        return Err(ProblemKind::InvisibleCharacters);
    }
    Ok(v.to_string())
}

/// Characters that change how the text around them is shown without showing themselves: bidirectional
/// embeddings, overrides and isolates, zero-width characters, and the byte-order mark.
pub fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A character a free-text field may not hold: a C0 or C1 control other than tab and newline.
pub fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// A work email: one `@` with a local part before it, a dotted domain of letters, digits and inner hyphens, and
/// not a free mail provider.
fn work_email(value: &str) -> Result<String, ProblemKind> {
    let email = value.trim().to_ascii_lowercase();
    if email.is_empty() {
        return Err(ProblemKind::Required);
    }
    if email.len() > EMAIL_MAX_BYTES
        || email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible_or_bidi(c))
    {
        return Err(ProblemKind::InvalidEmail);
    }
    let (local, domain) = email.rsplit_once('@').ok_or(ProblemKind::InvalidEmail)?;
    if local.is_empty() || local.contains('@') || domain.len() < 4 || !domain.contains('.') {
        return Err(ProblemKind::InvalidEmail);
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !labels_ok {
        return Err(ProblemKind::InvalidEmail);
    }
    if FREE_MAIL.contains(&domain) {
        return Err(ProblemKind::PersonalEmail {
            domain: domain.to_string(),
        });
    }
    Ok(email)
}

fn choice(value: &str, choices: &[String], undecided_allowed: bool) -> Result<String, ProblemKind> {
    let v = value.trim();
    if (undecided_allowed && v == UNDECIDED) || choices.iter().any(|c| c == v) {
        Ok(v.to_string())
    } else {
        Err(ProblemKind::NotAChoice {
            value: v.to_string(),
            choices: choices.to_vec(),
        })
    }
}

/// The message: forms send line ends as CRLF, so those become newlines before the control check.
fn message(value: &str) -> Result<String, ProblemKind> {
    let v = value.trim().replace("\r\n", "\n");
    let chars = v.chars().count();
    if chars > MESSAGE_MAX_CHARS {
        return Err(ProblemKind::TooLong {
            max: MESSAGE_MAX_CHARS,
            chars,
        });
    }
    if v.chars().any(is_forbidden_control) {
        return Err(ProblemKind::ControlCharacters);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> PreviewChoices {
        PreviewChoices {
            service_paths: vec!["report".into(), "managed-endpoint".into()],
            families: vec!["E4B".into()],
            gpus: vec!["l40s".into()],
        }
    }

    fn good() -> PreviewInput {
        PreviewInput {
            name: "Ada".into(),
            email: "Ada@Example.com ".into(),
            company: "Analytical Engines".into(),
            service_path: "managed-endpoint".into(),
            model_family: "E4B".into(),
            gpu: "l40s".into(),
            message: "Batch 8 chat serving".into(),
            ..PreviewInput::default()
        }
    }

    fn fields(input: &PreviewInput) -> Vec<&'static str> {
        match input.validate(&choices()) {
            Ok(_) => vec![],
            Err(problems) => problems.into_iter().map(|p| p.field).collect(),
        }
    }

    #[test]
    fn accepts_a_complete_request_trimmed_and_lower_cased() {
        let valid = good().validate(&choices()).unwrap();
        assert_eq!(valid.email, "ada@example.com");
        let undecided = PreviewInput {
            model_family: String::new(),
            gpu: " ".into(),
            ..good()
        }
        .with_undecided_defaults();
        let valid = undecided.validate(&choices()).unwrap();
        assert_eq!(
            (valid.model_family.as_str(), valid.gpu.as_str()),
            (UNDECIDED, UNDECIDED)
        );
    }

    #[test]
    fn names_each_bad_field_in_form_order() {
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
        let empty_family = PreviewInput {
            model_family: String::new(),
            ..good()
        };
        assert_eq!(
            fields(&empty_family),
            ["model_family"],
            "the API spells not-sure-yet as `undecided`"
        );
    }

    #[test]
    fn rejects_malformed_and_personal_emails() {
        for email in [
            "",
            "ada",
            "@x.com",
            "ada@.com",
            "ada@x.",
            "a b@x.com",
            "a@b@c.com",
            "ada@gmail.com",
        ] {
            let input = PreviewInput {
                email: email.into(),
                ..good()
            };
            assert_eq!(fields(&input), ["email"], "{email:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            work_email("Ada@Example.COM"),
            Ok("ada@example.com".to_string())
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@example.com",
            "a@gmail.com",
            "a b@example.com",
            "a@-x.com",
            "a@x..com",
        ] {
            assert!(work_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_controls_and_invisible_characters() {
        for name in ["Ada\u{0}", "Ada\u{1b}[31m", "Ada\u{7}", "A\u{85}da"] {
            let input = PreviewInput {
                name: name.into(),
                ..good()
            };
            let problems = input.validate(&choices()).unwrap_err();
            assert_eq!(problems[0].kind, ProblemKind::ControlCharacters, "{name:?}");
        }
        for name in [
            "Ada\u{202E}gpj.exe",
            "A\u{200B}da",
            "\u{FEFF}Ada",
            "A\u{2066}da",
        ] {
            for field in ["name", "company"] {
                let mut input = good();
                match field {
                    "name" => input.name = name.into(),
                    _ => input.company = name.into(),
                }
                let problems = input.validate(&choices()).unwrap_err();
                assert_eq!(
                    (problems[0].field, &problems[0].kind),
                    (field, &ProblemKind::InvisibleCharacters),
                    "{name:?}"
                );
            }
        }
        for message in [
            "ring\u{7}",
            "nul\u{0}",
            "esc\u{1b}[2J",
            "lone\rreturn",
            "c1\u{9b}",
        ] {
            let input = PreviewInput {
                message: message.into(),
                ..good()
            };
            assert_eq!(fields(&input), ["message"], "{message:?}");
        }
        let input = PreviewInput {
            message: "line one\r\nline two\n\tindented".into(),
            ..good()
        };
        assert_eq!(
            input.validate(&choices()).unwrap().message,
            "line one\nline two\n\tindented"
        );
        assert_eq!(
            fields(&PreviewInput {
                email: "a\u{200B}@example.com".into(),
                ..good()
            }),
            ["email"]
        );
    }

    #[test]
    fn both_wordings_name_the_limit() {
        let input = PreviewInput {
            name: "n".repeat(SHORT_FIELD_MAX_CHARS + 1),
            message: "m".repeat(MESSAGE_MAX_CHARS + 1),
            ..good()
        };
        let problems = input.validate(&choices()).unwrap_err();
        assert_eq!(problems[0].api_message(), "name is at most 200 characters");
        assert_eq!(
            problems[0].form_message(),
            "Your name must be at most 200 characters."
        );
        assert_eq!(
            problems[1].api_message(),
            "message is at most 2000 characters"
        );
        assert_eq!(
            problems[1].form_message(),
            "Keep the message to 2000 characters (it has 2001)."
        );
        let path = PreviewInput {
            service_path: "x".into(),
            ..good()
        };
        assert_eq!(
            path.validate(&choices()).unwrap_err()[0].api_message(),
            "one of report, managed-endpoint"
        );
    }

    fn form_fields(input: &PreviewInput) -> Vec<String> {
        form_errors(input, &choices())
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn the_form_accepts_a_complete_request_and_an_empty_choice_as_not_sure_yet() {
        assert!(form_fields(&good()).is_empty());
        let not_sure = PreviewInput {
            model_family: String::new(),
            gpu: String::new(),
            ..good()
        };
        assert!(form_fields(&not_sure).is_empty());
    }

    #[test]
    fn the_form_names_each_bad_field_in_its_own_words() {
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
