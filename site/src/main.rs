//! `vkae`: the server and operator CLI. All logic lives in `vkae_evidence::cli`; the site adds its pages.
fn main() -> std::process::ExitCode {
    vkae_evidence::cli::main(None)
}
