//! The private-preview request form's outcome. The form's reading of the one validator
//! ([`vkae_domain::PreviewInput::validate`]) is [`vkae_domain::form_errors`]: it runs in the browser (so a visitor
//! sees a field's problem before sending), in the site's server function (which never trusts the browser) and
//! the evidence store runs the validator again.

use serde::{Deserialize, Serialize};
pub use vkae_domain::preview::MESSAGE_MAX_CHARS;
pub use vkae_domain::{form_errors, FieldError, PreviewChoices, PreviewInput};

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
