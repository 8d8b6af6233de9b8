//! `qtool`: the command-line face of the qtool library. Each command lives in its own
//! file under `cmd/`, parses its arguments, calls the library and prints.

mod cli;
mod cmd;
mod log;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let code = match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qtool: {}", e.message);
            if !e.hint.is_empty() {
                eprintln!("qtool: {}", e.hint);
            }
            e.code
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
