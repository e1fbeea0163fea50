//! The `baton` binary; see the `baton_cli` library for the program.

fn main() -> std::process::ExitCode {
    baton_cli::main()
}
