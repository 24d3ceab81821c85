//! The public claim levels.

use crate::error::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A public claim level, in the order the evidence page lists them. Serialised as its slug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimLevel {
    DeclaredBaseline,
    VkaePath,
    OptimizedShowcase,
    PreviewSmoke,
}

impl ClaimLevel {
    pub const ALL: [ClaimLevel; 4] = [
        ClaimLevel::DeclaredBaseline,
        ClaimLevel::VkaePath,
        ClaimLevel::OptimizedShowcase,
        ClaimLevel::PreviewSmoke,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            ClaimLevel::DeclaredBaseline => "declared-baseline",
            ClaimLevel::VkaePath => "vkae-path",
            ClaimLevel::OptimizedShowcase => "optimized-showcase",
            ClaimLevel::PreviewSmoke => "preview-smoke",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ClaimLevel::DeclaredBaseline => "Declared baseline",
            ClaimLevel::VkaePath => "VKAE path",
            ClaimLevel::OptimizedShowcase => "Optimized showcase",
            ClaimLevel::PreviewSmoke => "Preview / smoke",
        }
    }

    /// Parses a slug as the evidence API writes it.
    pub fn parse(slug: &str) -> Result<ClaimLevel, ParseError> {
        ClaimLevel::ALL
            .into_iter()
            .find(|level| level.slug() == slug)
            .ok_or_else(|| {
                ParseError::new(format!(
                    "unknown claim level `{slug}` (expected one of {})",
                    ClaimLevel::ALL.map(ClaimLevel::slug).join(", ")
                ))
            })
    }
}

impl fmt::Display for ClaimLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_levels_round_trip_their_slugs() {
        for level in ClaimLevel::ALL {
            assert_eq!(ClaimLevel::parse(level.slug()), Ok(level));
            assert_eq!(level.to_string(), level.slug());
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{}\"", level.slug()));
            assert_eq!(serde_json::from_str::<ClaimLevel>(&json).unwrap(), level);
        }
        let e = ClaimLevel::parse("best-ever").unwrap_err();
        assert!(
            e.message.contains("best-ever") && e.message.contains("preview-smoke"),
            "{e}"
        );
    }
}
