//! The product copy (`content/site/copy.toml`), compiled into the server and checked at start-up. Words only:
//! the copy holds no figures (a test keeps it that way), so a number can only reach a page from the store.

use serde::Deserialize;
use std::sync::LazyLock;

const SOURCE: &str = include_str!("../../content/site/copy.toml");
const PATH: &str = "content/site/copy.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    pub site: SiteCopy,
    pub home: HomeCopy,
    pub models: ModelsCopy,
    pub sizing: SizingCopy,
    pub evidence: EvidenceCopy,
    pub engine: EngineCopy,
    pub preview: PreviewCopy,
    pub internal: PageMeta,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteCopy {
    pub name: String,
    pub tagline: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageMeta {
    pub title: String,
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeCopy {
    pub title: String,
    pub description: String,
    pub heading: String,
    pub lead: String,
    pub launch: String,
    pub card_heading: String,
    pub card_intro: String,
    pub no_claim: String,
    pub pillars: Vec<Named>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsCopy {
    pub title: String,
    pub description: String,
    pub heading: String,
    pub lead: String,
    pub claim_ready: String,
    pub porting: String,
    pub porting_note: String,
    pub excluded_heading: String,
    pub adjacent_heading: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizingCopy {
    pub title: String,
    pub description: String,
    pub heading: String,
    pub lead: String,
    pub chart_heading: String,
    pub chart_lead: String,
    pub no_points: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceCopy {
    pub title: String,
    pub description: String,
    pub heading: String,
    pub lead: String,
    pub empty_level: String,
    pub blocked_heading: String,
    pub blocked_note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineCopy {
    pub title: String,
    pub description: String,
    pub heading: String,
    pub lead: String,
    pub layers: Vec<Named>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewCopy {
    pub title: String,
    pub description: String,
    pub heading: String,
    pub lead: String,
    pub confirmation: String,
}

static COPY: LazyLock<Result<Copy, String>> = LazyLock::new(|| parse(SOURCE));

fn parse(source: &str) -> Result<Copy, String> {
    let copy: Copy = toml::from_str(source).map_err(|e| format!("{PATH}: {e}"))?;
    let value: toml::Value = toml::from_str(source).map_err(|e| format!("{PATH}: {e}"))?;
    check_strings(&value, "")?;
    Ok(copy)
}

/// Every string present and non-empty, and no digits: figures belong to the store, not to the copy.
/// (Model family names such as E4B, and BF16, are the allowed uses of digits.)
fn check_strings(value: &toml::Value, at: &str) -> Result<(), String> {
    match value {
        toml::Value::String(text) => {
            if text.trim().is_empty() {
                return Err(format!("{PATH}: `{at}` is empty"));
            }
            let without_names = [
                "E2B", "E4B", "12B", "26B-A4B", "31B", "gemma-4", "Gemma 4", "BF16",
            ]
            .iter()
            .fold(text.clone(), |t, name| t.replace(name, ""));
            if without_names.chars().any(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "{PATH}: `{at}` contains a figure; numbers must come from the evidence store"
                ));
            }
            Ok(())
        }
        toml::Value::Table(table) => table.iter().try_for_each(|(key, v)| {
            check_strings(
                v,
                &format!("{at}{}{key}", if at.is_empty() { "" } else { "." }),
            )
        }),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_strings(v, &format!("{at}[{i}]"))),
        _ => Err(format!("{PATH}: `{at}` must be text")),
    }
}

/// The copy, or the reason it could not be read. `vkae` calls this before serving.
pub fn check() -> Result<(), String> {
    COPY.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// The copy. Only called after `check()` passed at start-up.
pub fn copy() -> &'static Copy {
    COPY.as_ref()
        .expect("content/site/copy.toml is checked at start-up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_copy_parses_and_holds_no_figures() {
        check().unwrap();
        assert_eq!(copy().engine.layers.len(), 4);
    }

    #[test]
    fn a_figure_in_the_copy_is_refused_with_its_field() {
        let broken = SOURCE.replace("Gemma 4 E4B is the launch lane", "E4B runs at 5.32x");
        let error = parse(&broken).unwrap_err();
        assert!(error.contains("home.launch"), "{error}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let broken = SOURCE.replace("no_claim =", "no_claim_x =");
        let error = parse(&broken).unwrap_err();
        assert!(error.contains("no_claim"), "{error}");
    }
}
