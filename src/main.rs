//! The `meshwork` binary: see the `meshwork-cli` crate.

fn main() -> std::process::ExitCode {
    meshwork_cli::main()
}
