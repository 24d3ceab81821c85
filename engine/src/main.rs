fn main() -> std::process::ExitCode {
    vkae_engine::cli::main()
}
