//! `vkae`: the server and operator CLI. All logic lives in `vkae_evidence::cli`; the site adds its pages.
fn main() -> std::process::ExitCode {
    if let Err(error) = vkae_site::copy::check() {
        eprintln!("vkae: {error}");
        return std::process::ExitCode::FAILURE;
    }
    let settings = vkae_site::server::SiteSettings::from_env();
    vkae_evidence::cli::main(Some(Box::new(move |state| {
        vkae_site::server::routes(state, settings)
    })))
}
