//! Content as data: the catalog, GPU specs, service paths, model profiles and sizing assumptions, read from
//! `content/*.toml` at start-up and validated. A broken file stops start-up with an error naming file and field.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
pub use vkae_domain::{
    Adjacent, BenchmarkRules, Excluded, Family, Gpu, ProfileStatus, ServicePathInfo,
};

/// Files read from the content folder, in load order.
pub const FILES: [&str; 5] = [
    "catalog.toml",
    "gpus.toml",
    "service_paths.toml",
    "profiles.toml",
    "sizing.toml",
];

/// The content compiled into the binary (used when no content folder is given or found).
const EMBEDDED: [(&str, &str); 5] = [
    ("catalog.toml", include_str!("../../content/catalog.toml")),
    ("gpus.toml", include_str!("../../content/gpus.toml")),
    (
        "service_paths.toml",
        include_str!("../../content/service_paths.toml"),
    ),
    ("profiles.toml", include_str!("../../content/profiles.toml")),
    ("sizing.toml", include_str!("../../content/sizing.toml")),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub families: Vec<Family>,
    pub adjacent: Adjacent,
    pub excluded: Vec<Excluded>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GpuFile {
    gpus: Vec<Gpu>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicePathFile {
    paths: Vec<ServicePathInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub family: String,
    pub status: ProfileStatus,
    pub note: String,
    pub max_ppl_relative: f64,
    pub min_top1_agreement: f64,
    pub max_mean_kl: f64,
    /// The path a record's baseline role must be: the strongest reference path that runs for this family.
    pub declared_baseline: String,
    /// A context path whose lift is shown beside the declared baseline's, when a record carries it.
    #[serde(default)]
    pub eager_reference: Option<String>,
    /// Days a claim stays current after its run finished; past it the claim is shown stale.
    pub claim_current_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    benchmark: BenchmarkRules,
    profiles: Vec<Profile>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub context_tokens: u32,
    pub batch: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizingRules {
    pub headroom_fraction: f64,
    pub gpu_counts: Vec<u32>,
    pub minimum: Scenario,
    pub recommended: Scenario,
}

/// All content, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Content {
    pub catalog: Catalog,
    pub gpus: Vec<Gpu>,
    pub service_paths: Vec<ServicePathInfo>,
    pub benchmark: BenchmarkRules,
    pub profiles: Vec<Profile>,
    pub sizing: SizingRules,
}

/// A content file that could not be read, parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentError {
    pub file: PathBuf,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: field `{}`: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for ContentError {}

fn parse_toml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, ContentError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_string();
        let field = match message.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or_default();
                if path == "." {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                }
            }
            None if path == "." => String::new(),
            None => path,
        };
        ContentError {
            file: file.to_path_buf(),
            field,
            message,
        }
    })
}

impl Content {
    /// Reads and validates the content folder.
    pub fn load(dir: &Path) -> Result<Content, ContentError> {
        let mut texts = Vec::new();
        for name in FILES {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| ContentError {
                file: path.clone(),
                field: String::new(),
                message: format!("cannot read: {e}"),
            })?;
            texts.push((path, text));
        }
        Self::from_texts(texts)
    }

    /// The content compiled into the binary, validated.
    pub fn embedded() -> Result<Content, ContentError> {
        Self::from_texts(
            EMBEDDED
                .iter()
                .map(|(name, text)| (Path::new("content").join(name), text.to_string()))
                .collect(),
        )
    }

    fn from_texts(texts: Vec<(PathBuf, String)>) -> Result<Content, ContentError> {
        let [catalog, gpus, paths, profiles, sizing]: [(PathBuf, String); 5] =
            texts.try_into().expect("one text per content file");
        let catalog_v: Catalog = parse_toml(&catalog.0, &catalog.1)?;
        let gpus_v: GpuFile = parse_toml(&gpus.0, &gpus.1)?;
        let paths_v: ServicePathFile = parse_toml(&paths.0, &paths.1)?;
        let profiles_v: ProfileFile = parse_toml(&profiles.0, &profiles.1)?;
        let sizing_v: SizingRules = parse_toml(&sizing.0, &sizing.1)?;
        let content = Content {
            catalog: catalog_v,
            gpus: gpus_v.gpus,
            service_paths: paths_v.paths,
            benchmark: profiles_v.benchmark,
            profiles: profiles_v.profiles,
            sizing: sizing_v,
        };
        content.validate(&catalog.0, &gpus.0, &paths.0, &profiles.0, &sizing.0)?;
        Ok(content)
    }

    fn validate(
        &self,
        catalog: &Path,
        gpus: &Path,
        paths: &Path,
        profiles: &Path,
        sizing: &Path,
    ) -> Result<(), ContentError> {
        let err = |file: &Path, field: String, message: &str| ContentError {
            file: file.to_path_buf(),
            field,
            message: message.to_string(),
        };
        let positive = |file: &Path, field: String, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(err(file, field, "must be a positive number"))
            }
        };
        if self.catalog.families.len() != 5 {
            return Err(err(
                catalog,
                "families".into(),
                "the catalog has exactly 5 Gemma 4 families",
            ));
        }
        let mut slugs = HashSet::new();
        let mut repos = HashSet::new();
        for (i, f) in self.catalog.families.iter().enumerate() {
            let at = |name: &str| format!("families[{i}].{name}");
            if !valid_slug(&f.slug) || !slugs.insert(f.slug.clone()) {
                return Err(err(
                    catalog,
                    at("slug"),
                    "must be a unique slug of A-Z a-z 0-9 -",
                ));
            }
            if f.repos.len() != 3 {
                return Err(err(
                    catalog,
                    at("repos"),
                    "each family has 3 official repos (base, -it, -it-assistant)",
                ));
            }
            for (j, repo) in f.repos.iter().enumerate() {
                if !repo.starts_with("google/gemma-4-") || !repos.insert(repo.clone()) {
                    return Err(err(
                        catalog,
                        format!("families[{i}].repos[{j}]"),
                        "must be a unique google/gemma-4-* repo",
                    ));
                }
            }
            for (name, v) in [
                ("params_total_b", f.params_total_b),
                ("params_effective_b", f.params_effective_b),
                ("bf16_weights_gb", f.bf16_weights_gb),
                ("decode_gb_per_token", f.decode_gb_per_token),
            ] {
                positive(catalog, at(name), v)?;
            }
            if f.params_effective_b > f.params_total_b {
                return Err(err(
                    catalog,
                    at("params_effective_b"),
                    "cannot exceed params_total_b",
                ));
            }
            if f.sliding_per_full == 0
                || f.num_hidden_layers == 0
                || f.num_kv_shared_layers >= f.num_hidden_layers
            {
                return Err(err(
                    catalog,
                    at("num_kv_shared_layers"),
                    "layer counts are inconsistent",
                ));
            }
            for (name, v) in [
                ("kv_heads_sliding", f.kv_heads_sliding),
                ("kv_heads_global", f.kv_heads_global),
                ("head_dim_sliding", f.head_dim_sliding),
                ("head_dim_global", f.head_dim_global),
                ("sliding_window", f.sliding_window),
                ("max_context", f.max_context),
                ("hidden_size", f.hidden_size),
                ("attention_heads", f.attention_heads),
            ] {
                if v == 0 {
                    return Err(err(catalog, at(name), "must be at least 1"));
                }
            }
        }
        if repos.len() != 15 {
            return Err(err(
                catalog,
                "families".into(),
                "the catalog lists the 15 official BF16 repos",
            ));
        }
        if self.catalog.adjacent.repos.is_empty() {
            return Err(err(
                catalog,
                "adjacent.repos".into(),
                "the adjacent lane names its repo",
            ));
        }
        for (i, x) in self.catalog.excluded.iter().enumerate() {
            if x.name.trim().is_empty() || x.reason.trim().is_empty() {
                return Err(err(
                    catalog,
                    format!("excluded[{i}]"),
                    "an excluded packaging has a name and a reason",
                ));
            }
        }

        if self.gpus.is_empty() {
            return Err(err(gpus, "gpus".into(), "at least one GPU"));
        }
        let mut ids = HashSet::new();
        for (i, g) in self.gpus.iter().enumerate() {
            let at = |name: &str| format!("gpus[{i}].{name}");
            if !valid_slug(&g.id) || !ids.insert(g.id.clone()) {
                return Err(err(gpus, at("id"), "must be a unique slug"));
            }
            positive(gpus, at("memory_gb"), g.memory_gb)?;
            positive(gpus, at("bandwidth_gb_s"), g.bandwidth_gb_s)?;
            positive(gpus, at("bf16_dense_tflops"), g.bf16_dense_tflops)?;
            if g.source.trim().is_empty() {
                return Err(err(gpus, at("source"), "name the vendor datasheet"));
            }
            if g.match_names.is_empty() {
                return Err(err(gpus, at("match_names"), "at least one name"));
            }
        }

        let expected = [
            "report",
            "managed-endpoint",
            "private-docker",
            "on-prem",
            "custom-build",
        ];
        let found: Vec<&str> = self.service_paths.iter().map(|p| p.slug.as_str()).collect();
        for (i, slug) in found.iter().enumerate() {
            if !expected.contains(slug) {
                return Err(err(paths, format!("paths[{i}].slug"), "must be one of report, managed-endpoint, private-docker, on-prem, custom-build"));
            }
        }
        if found.len() != 5 || expected.iter().any(|e| !found.contains(e)) {
            return Err(err(
                paths,
                "paths".into(),
                "the five service paths, each once",
            ));
        }

        if self.benchmark.min_repetitions < 3 {
            return Err(err(
                profiles,
                "benchmark.min_repetitions".into(),
                "at least 3 timed repetitions",
            ));
        }
        if !(self.benchmark.max_spread > 0.0 && self.benchmark.max_spread < 1.0) {
            return Err(err(
                profiles,
                "benchmark.max_spread".into(),
                "must be within (0, 1)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, p) in self.profiles.iter().enumerate() {
            let at = |name: &str| format!("profiles[{i}].{name}");
            if !slugs.iter().any(|s| *s == p.family) || !seen.insert(p.family.clone()) {
                return Err(err(
                    profiles,
                    at("family"),
                    "must name a catalog family, once",
                ));
            }
            if !(p.max_ppl_relative > 0.0 && p.max_ppl_relative < 1.0) {
                return Err(err(
                    profiles,
                    at("max_ppl_relative"),
                    "must be within (0, 1)",
                ));
            }
            if !(p.min_top1_agreement > 0.0 && p.min_top1_agreement <= 1.0) {
                return Err(err(
                    profiles,
                    at("min_top1_agreement"),
                    "must be within (0, 1]",
                ));
            }
            if !(p.max_mean_kl > 0.0 && p.max_mean_kl.is_finite()) {
                return Err(err(
                    profiles,
                    at("max_mean_kl"),
                    "must be a positive number",
                ));
            }
            if p.declared_baseline.trim().is_empty() {
                return Err(err(
                    profiles,
                    at("declared_baseline"),
                    "name the path a record's baseline must be",
                ));
            }
            if p.eager_reference.as_deref() == Some(p.declared_baseline.as_str())
                || p.eager_reference
                    .as_deref()
                    .is_some_and(|r| r.trim().is_empty())
            {
                return Err(err(
                    profiles,
                    at("eager_reference"),
                    "a non-empty path other than the declared baseline",
                ));
            }
            if p.claim_current_days == 0 {
                return Err(err(profiles, at("claim_current_days"), "at least 1 day"));
            }
        }
        if seen.len() != slugs.len() {
            return Err(err(
                profiles,
                "profiles".into(),
                "every catalog family needs a profile",
            ));
        }
        if !self
            .profiles
            .iter()
            .any(|p| p.status == ProfileStatus::ClaimReady)
        {
            return Err(err(
                profiles,
                "profiles".into(),
                "at least one claim-ready profile",
            ));
        }

        if !(self.sizing.headroom_fraction >= 0.0 && self.sizing.headroom_fraction < 0.5) {
            return Err(err(
                sizing,
                "headroom_fraction".into(),
                "must be within [0, 0.5)",
            ));
        }
        if self.sizing.gpu_counts.is_empty() || self.sizing.gpu_counts.contains(&0) {
            return Err(err(
                sizing,
                "gpu_counts".into(),
                "positive counts, at least one",
            ));
        }
        for (name, s) in [
            ("minimum", self.sizing.minimum),
            ("recommended", self.sizing.recommended),
        ] {
            if s.context_tokens == 0 || s.batch == 0 {
                return Err(err(
                    sizing,
                    format!("{name}.context_tokens"),
                    "context and batch must be at least 1",
                ));
            }
        }
        Ok(())
    }

    pub fn family(&self, slug: &str) -> Option<&Family> {
        self.catalog.families.iter().find(|f| f.slug == slug)
    }

    pub fn profile(&self, family: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.family == family)
    }

    pub fn gpu(&self, id: &str) -> Option<&Gpu> {
        self.gpus.iter().find(|g| g.id == id)
    }

    /// The catalog GPU a run's `hardware.gpu` names (case-insensitive match on `match_names`, `name` or `id`).
    pub fn gpu_for_name(&self, name: &str) -> Option<&Gpu> {
        let wanted = name.trim().to_ascii_lowercase();
        self.gpus.iter().find(|g| {
            g.id == wanted
                || g.name.to_ascii_lowercase() == wanted
                || g.match_names
                    .iter()
                    .any(|m| m.to_ascii_lowercase() == wanted)
        })
    }

    pub fn service_path(&self, slug: &str) -> Option<&ServicePathInfo> {
        self.service_paths.iter().find(|p| p.slug == slug)
    }
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_content_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content");
        let content = Content::load(&dir).unwrap();
        assert_eq!(content.catalog.families.len(), 5);
        assert_eq!(
            content
                .catalog
                .families
                .iter()
                .map(|f| f.repos.len())
                .sum::<usize>(),
            15
        );
        assert_eq!(
            content.profile("E4B").unwrap().status,
            ProfileStatus::ClaimReady
        );
        assert_eq!(content.gpu_for_name("NVIDIA H200").unwrap().id, "h200");
        assert!(Content::embedded().is_ok());
    }

    fn broken(file: &str, from: &str, to: &str) -> ContentError {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content");
        let texts = FILES
            .iter()
            .map(|name| {
                let path = dir.join(name);
                let mut text = std::fs::read_to_string(&path).unwrap();
                if *name == file {
                    assert!(text.contains(from), "{from} not in {file}");
                    text = text.replacen(from, to, 1);
                }
                (path, text)
            })
            .collect();
        Content::from_texts(texts).unwrap_err()
    }

    #[test]
    fn broken_files_name_file_and_field() {
        let cases = [
            (
                "gpus.toml",
                "memory_gb = 24",
                "memory_gb = -24",
                "gpus[0].memory_gb",
            ),
            (
                "gpus.toml",
                "memory_gb = 24",
                "memory_gb = \"lots\"",
                "gpus[0].memory_gb",
            ),
            (
                "catalog.toml",
                "hidden_size = 1536\n",
                "",
                "families[0].hidden_size",
            ),
            (
                "catalog.toml",
                "slug = \"E4B\"",
                "slug = \"E2B\"",
                "families[1].slug",
            ),
            (
                "profiles.toml",
                "status = \"claim-ready\"",
                "status = \"ready\"",
                "profiles[0].status",
            ),
            (
                "profiles.toml",
                "min_repetitions = 3",
                "min_repetitions = 2",
                "benchmark.min_repetitions",
            ),
            (
                "service_paths.toml",
                "slug = \"on-prem\"",
                "slug = \"onprem\"",
                "paths[3].slug",
            ),
            (
                "sizing.toml",
                "headroom_fraction = 0.10",
                "headroom_fraction = 0.9",
                "headroom_fraction",
            ),
            (
                "gpus.toml",
                "match_names = [\"NVIDIA L4\", \"L4\"]",
                "match_names = [\"NVIDIA L4\", \"L4\"]\nextra = 1",
                "gpus[0].extra",
            ),
        ];
        for (file, from, to, field) in cases {
            let e = broken(file, from, to);
            assert!(e.file.ends_with(file), "{e}");
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(file) && e.to_string().contains(field));
        }
    }
}
