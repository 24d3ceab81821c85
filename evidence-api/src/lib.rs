//! vkae-evidence: the evidence store (work in progress; see issue 2).
pub mod content;
pub mod error;

pub mod cli {
    /// Entry point of the `vkae` binary (placeholder until the CLI lands).
    pub fn main(_site: Option<()>) -> std::process::ExitCode {
        eprintln!("vkae: the CLI is not built yet");
        std::process::ExitCode::FAILURE
    }
}
