//! Identifiers as validated newtypes. Each parses from a string, displays as that string and (de)serialises as
//! a plain JSON string, refusing on deserialisation what `parse` refuses.

use crate::error::ParseError;

/// A catalog slug: 1 to 32 characters of `A-Z a-z 0-9 -`.
fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A run id: 1 to 128 characters of `A-Z a-z 0-9 . _ : -` (the run record's rule).
fn is_run_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $valid:path, $what:literal, $rule:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<$name, ParseError> {
                if $valid(value) {
                    Ok($name(value.to_string()))
                } else {
                    Err(ParseError::new(format!(
                        concat!("`{}` is not a ", $what, " (", $rule, ")"),
                        value
                    )))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(value: String) -> Result<$name, ParseError> {
                $name::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

string_id!(
    /// A Gemma 4 family's catalog slug, e.g. `E4B`.
    FamilyId, is_slug, "family slug", "1 to 32 characters of A-Z a-z 0-9 -"
);
string_id!(
    /// A catalog GPU id, e.g. `h200`.
    GpuSlug, is_slug, "GPU slug", "1 to 32 characters of A-Z a-z 0-9 -"
);
string_id!(
    /// A qualification run's id, as its signed record names it.
    RunId, is_run_id, "run id", "1 to 128 characters of A-Z a-z 0-9 . _ : -"
);
string_id!(
    /// A service path's slug, e.g. `managed-endpoint` (the paths themselves are content).
    ServicePath, is_slug, "service path slug", "1 to 32 characters of A-Z a-z 0-9 -"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_display_and_serialise_as_strings() {
        let family = FamilyId::parse("E4B").unwrap();
        assert_eq!(family.to_string(), "E4B");
        assert_eq!(serde_json::to_string(&family).unwrap(), "\"E4B\"");
        assert_eq!(
            RunId::parse("run:2026-01-01_a.b").unwrap().as_str(),
            "run:2026-01-01_a.b"
        );
        assert_eq!(GpuSlug::parse("a100-80gb").unwrap(), "a100-80gb");
    }

    #[test]
    fn bad_ids_are_refused_with_the_value_and_the_rule() {
        let e = FamilyId::parse("E4B!").unwrap_err();
        assert!(
            e.message.contains("`E4B!`") && e.message.contains("A-Z"),
            "{e}"
        );
        assert!(GpuSlug::parse("").is_err());
        assert!(GpuSlug::parse(&"x".repeat(33)).is_err());
        assert!(RunId::parse("a b").is_err());
        assert!(RunId::parse(&"r".repeat(129)).is_err());
        assert!(ServicePath::parse("on prem").is_err());
        let e = serde_json::from_str::<RunId>("\"a/b\"").unwrap_err();
        assert!(e.to_string().contains("run id"), "{e}");
    }
}
