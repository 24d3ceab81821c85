//! `vkae`: the server and operator CLI. All logic lives in `vkae_evidence::cli`; the site adds its pages.
fn main() -> std::process::ExitCode {
    if let Err(error) = vkae_site::copy::check() {
        eprintln!("vkae: {error}");
        return std::process::ExitCode::FAILURE;
    }
    vkae_evidence::cli::main(None)
}
