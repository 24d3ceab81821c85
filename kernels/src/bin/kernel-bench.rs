//! `kernel-bench`: reference check, then timing, of every vkae-kernels op at Gemma 4 E4B shapes.
//! See `vkae_kernels::bench` for the method. Exit status 1 if a check fails or CUDA is missing.

fn main() {
    let settings = match vkae_kernels::bench::Settings::parse(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = vkae_kernels::bench::run(&settings) {
        eprintln!("kernel-bench: {e}");
        std::process::exit(1);
    }
}
