//! The `claimex` binary: the command line of [`claimex::cli`].

fn main() -> std::process::ExitCode {
    claimex::cli::main()
}
