//! One file per command. Each parses its arguments, calls the library, prints.

mod completions;
mod dequeue;
mod dump;
mod enqueue;
mod list;
mod recover;
mod repair;
mod run;
mod runners;
mod stats;

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
        Command::List(a) => list::run(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Unshunt(a) => repair::unshunt(g, a),
        Command::Move(a) => repair::move_(g, a),
        Command::Delete(a) => repair::delete(g, a),
        Command::Recover(a) => recover::run(g, a),
        Command::Runners(a) => runners::run(g, a),
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
    config.check_locations()?;
    Ok(config)
}

/// The switchboard of a queue named on the command line (validated first).
pub fn switchboard(config: &Config, name: &str) -> Result<Switchboard> {
    let name: QueueName = name.parse()?;
    Ok(config.switchboard(&name))
}

/// The queues named on the command line (validated), or every queue under `queue_dir`.
pub fn queues_or_all(config: &Config, names: &[String]) -> Result<Vec<QueueName>> {
    if names.is_empty() {
        config.queue_names()
    } else {
        names.iter().map(|q| q.parse()).collect()
    }
}

/// The `bad` switchboard of this configuration.
pub fn bad(config: &Config) -> Switchboard {
    config.switchboard(&QueueName::bad())
}

/// A filebase given on the command line; a malformed one is a usage error (2).
pub fn parse_filebase(text: &str) -> Result<qtool::queue::Filebase> {
    text.parse().map_err(|e: qtool::Error| qtool::Error {
        code: qtool::error::exit::USAGE,
        ..e
    })
}

/// `path` for messages, `-` for standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// An age limit such as `2h` or `30m`, in seconds.
pub fn parse_age(text: &str) -> Result<f64> {
    qtool::config::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .ok_or_else(|| {
            qtool::Error::usage(
                format!("invalid age {text:?}"),
                "write a duration such as 30s, 5m, 2h or 1d",
            )
        })
}
