use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = veer::cli::Cli::parse();
    veer::cli::init_tracing(&cli);
    veer::cli::run(cli)
}
