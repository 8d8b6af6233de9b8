//! One file per command. Each parses its arguments, calls the library, prints.

mod completions;
mod dequeue;
mod dump;
mod enqueue;
mod run;

use std::path::Path;

use qtool::config::Config;
use qtool::error::Result;
use qtool::queue::{QueueName, Switchboard};

use crate::cli::{Cli, Command, Global};

pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Enqueue(a) => enqueue::run(g, a),
        Command::Dequeue(a) => dequeue::run(g, a),
        Command::RunOnce(a) => run::run_once(g, a),
        Command::Run(a) => run::run(g, a),
        Command::Dump(a) => dump::run(g, a),
        Command::Completions(a) => completions::completions(a),
        Command::Man(a) => completions::man(a),
    }
}

/// The configuration, with `-d/--queue-dir` applied.
pub fn load_config(g: &Global) -> Result<Config> {
    let mut config = Config::load(g.config.as_deref())?;
    if let Some(dir) = &g.queue_dir {
        config.queue_dir = dir.clone();
    }
    Ok(config)
}

/// The switchboard of a queue named on the command line (validated first).
pub fn switchboard(config: &Config, name: &str) -> Result<Switchboard> {
    let name: QueueName = name.parse()?;
    Ok(config.switchboard(&name))
}

/// The `bad` switchboard of this configuration.
pub fn bad(config: &Config) -> Switchboard {
    config.switchboard(&QueueName::bad())
}

/// `path` for messages, `-` for standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}
