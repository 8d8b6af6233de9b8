//! `qtool`: the command-line face of the qtool library. Each command lives in its own
//! file under `cmd/`, parses its arguments, calls the library and prints.

#[macro_use]
mod output;
mod cli;
mod cmd;
mod log;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
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

/// `Cli::try_parse`, except that the command tree and the matches are not dropped: the
/// process is short and freeing clap's tree is a measurable share of a single enqueue's
/// start-up (an MTA starts one process per message).
fn parse() -> Result<cli::Cli, clap::Error> {
    let cmd = Box::leak(Box::new(cli::Cli::command()));
    let matches = Box::leak(Box::new(cmd.try_get_matches_from_mut(std::env::args_os())?));
    cli::Cli::from_arg_matches_mut(matches).map_err(|e| e.format(cmd))
}

/// Argument errors in qtool's shape: what is wrong, then where to read more, on two
/// lines, exit 2. Help and version go to stdout as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            },
        );
    }
    let text = e.render().to_string();
    // The message is the first paragraph, folded onto one line.
    let first: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let first = first.join(" ");
    let first = first.trim_start_matches("error: ");
    let usage = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| format!("usage: {u}; see --help"))
        .unwrap_or_else(|| "see qtool --help".to_string());
    eprintln!("qtool: {first}");
    eprintln!("qtool: {usage}");
    ExitCode::from(2)
}
