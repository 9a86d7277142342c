//! The `meshwork` command line. `meshwork daemon` (and `up`) run a node in
//! the foreground; every other command is a client of a running node's
//! control API, found through `api.json` in the node's home.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod args;
mod client;
mod commands;
mod daemon;
mod duration;
mod events;
mod format;
mod output;
mod progress;
mod safe;
mod search;
mod size;
mod text;

use std::process::ExitCode;

use clap::Parser;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An error may quote what a peer wrote (a department's name).
            eprintln!("error: {}", safe::body(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
