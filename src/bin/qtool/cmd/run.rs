//! `qtool run-once RUNNER[:SLICE:RANGE]` (recovery plus one pass, for cron) and
//! `qtool run RUNNER[:SLICE:RANGE]` (passes until SIGTERM/SIGINT; SIGUSR1 stops and asks
//! the supervisor for a restart; SIGHUP reopens the log file).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qtool::config::{Config, HandlerSpec};
use qtool::error::{exit, Error, Result};
use qtool::handler::Handler;
use qtool::queue::{QueueName, Slice};
use qtool::runner::{Counts, Event, Runner};

use super::load_config;
use crate::cli::{Global, RunArgs};
use crate::log::{Level, Logger};

/// How long a handler may go on after a stop before it is killed and its entry put back.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// The exit status of a runner stopped by SIGUSR1: "restart me".
pub const EXIT_RESTART: i32 = exit::TEMPFAIL;

/// Parses `NAME[:SLICE:RANGE]` (Mailman's `-r name:slice:range`).
pub fn parse_runner_spec(text: &str) -> Result<(QueueName, Slice)> {
    let mut parts = text.split(':');
    let name: QueueName = parts.next().unwrap_or_default().parse()?;
    let rest: Vec<&str> = parts.collect();
    let slice = match rest.as_slice() {
        [] => Slice::ALL,
        [slice, range] => {
            let bad = || {
                Error::usage(
                    format!("invalid slice in {text:?}"),
                    "write RUNNER:SLICE:RANGE, RANGE a power of two and 0 <= SLICE < RANGE, e.g. in:1:4",
                )
            };
            let slice: u32 = slice.parse().map_err(|_| bad())?;
            let range: u32 = range.parse().map_err(|_| bad())?;
            Slice::new(slice, range)?
        }
        _ => {
            return Err(Error::usage(
                format!("invalid runner {text:?}"),
                "write RUNNER or RUNNER:SLICE:RANGE, e.g. in or in:1:4",
            ))
        }
    };
    Ok((name, slice))
}

fn handler_spec(a: &RunArgs, config: &Config, name: &QueueName) -> Result<HandlerSpec> {
    if let Some(q) = &a.forward {
        return Ok(HandlerSpec::Forward(q.parse()?));
    }
    if a.discard {
        return Ok(HandlerSpec::Discard);
    }
    if !a.exec.is_empty() {
        return Ok(HandlerSpec::Exec(a.exec.clone()));
    }
    config.runner(name.as_str()).handler.ok_or_else(|| {
        Error::usage(
            format!("runner {name} has no handler"),
            "give --forward QUEUE, --discard or -- PROGRAM [ARG]..., or define it in the config",
        )
    })
}

fn build_runner(a: &RunArgs, config: Arc<Config>, stop: Arc<AtomicBool>) -> Result<Runner> {
    let spec = a
        .runner
        .as_deref()
        .expect("clap requires RUNNER without --all");
    let (name, slice) = parse_runner_spec(spec)?;
    let rc = config.runner(name.as_str());
    let handler_spec = handler_spec(a, &config, &name)?;
    let handler = Handler::from_spec(&handler_spec, rc.timeout, |q| config.switchboard(q));
    Ok(Runner {
        queue: config.switchboard(&name),
        shunt: config.switchboard(&QueueName::shunt()),
        bad: config.switchboard(&QueueName::bad()),
        slice,
        handler,
        sleep_time: rc.sleep_time,
        config,
        stop,
        grace: STOP_GRACE,
    })
}

fn runner_label(r: &Runner) -> String {
    if r.slice.is_all() {
        r.queue.name().to_string()
    } else {
        format!("{}:{}", r.queue.name(), r.slice)
    }
}

/// Logs one runner event.
fn log_event(log: &mut Logger, who: &str, event: Event) {
    match event {
        Event::Recovered(fb) => log.log(
            Level::Info,
            &format!("{who}: recovered orphaned entry {fb}"),
        ),
        Event::Preserved(fb, why) => log.log(
            Level::Error,
            &format!("{who}: preserving entry {fb} in bad: {why}"),
        ),
        Event::Busy(n) => log.log(
            Level::Debug,
            &format!("{who}: {n} claimed entries held by live processes left alone"),
        ),
        Event::Stray(name) => log.log(
            Level::Debug,
            &format!("{who}: skipping {name:?}: not a queue entry"),
        ),
        Event::Done(fb) => log.log(Level::Debug, &format!("{who}: finished {fb}")),
        Event::Kept(fb, new) => log.log(Level::Debug, &format!("{who}: kept {fb} as {new}")),
        Event::Shunted(fb, new, why) => log.log(
            Level::Error,
            &format!("{who}: SHUNTING: {fb} as shunt/{new}: {why}"),
        ),
        Event::Deferred(fb, why) => log.log(Level::Error, &format!("{who}: put back {fb}: {why}")),
        Event::ShuntFailed(fb, why) => log.log(
            Level::Error,
            &format!("{who}: SHUNTING FAILED, preserving original entry {fb} in bad: {why}"),
        ),
    }
}

fn summary(c: &Counts) -> String {
    format!(
        "{} done, {} kept, {} shunted, {} put back, {} preserved, {} recovered",
        c.done, c.kept, c.shunted, c.deferred, c.preserved, c.recovered
    )
}

pub fn run_once(g: &Global, a: RunArgs) -> Result<i32> {
    if a.all {
        return Err(Error::usage(
            "--all goes with `qtool run`",
            "use `qtool run --all`",
        ));
    }
    let config = Arc::new(load_config(g)?);
    let stop = Arc::new(AtomicBool::new(false));
    register_stop(&stop)?;
    let runner = build_runner(&a, config, stop)?;
    let mut log = Logger::new(a.log_file.clone(), g.verbose, g.quiet)?;
    let who = runner_label(&runner);
    let mut sink = |e: Event| log_event(&mut log, &who, e);
    let mut counts = runner.recover(&mut sink)?;
    counts.add(&runner.one_pass(&mut sink)?);
    log.log(Level::Info, &format!("{who}: {}", summary(&counts)));
    Ok(0)
}

pub fn run(g: &Global, a: RunArgs) -> Result<i32> {
    if a.all {
        return Err(Error::usage(
            "run --all is not available yet",
            "run each runner with `qtool run RUNNER`",
        ));
    }
    let config = Arc::new(load_config(g)?);
    let stop = Arc::new(AtomicBool::new(false));
    register_stop(&stop)?;
    let restart = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, restart.clone())
        .map_err(signal_error)?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, stop.clone())
        .map_err(signal_error)?;
    let runner = build_runner(&a, config, stop)?;
    let mut log = Logger::new(a.log_file.clone(), g.verbose, g.quiet)?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, log.reopen_flag())
        .map_err(signal_error)?;
    let who = runner_label(&runner);
    log.log(
        Level::Info,
        &format!("{who}: runner started ({})", runner.handler.describe()),
    );
    let result = runner.run(&mut |e: Event| log_event(&mut log, &who, e));
    match result {
        Ok(counts) => {
            log.log(
                Level::Info,
                &format!("{who}: runner stopped: {}", summary(&counts)),
            );
            Ok(if restart.load(Ordering::Relaxed) {
                EXIT_RESTART
            } else {
                0
            })
        }
        Err(e) => {
            log.log(
                Level::Error,
                &format!("{who}: runner failed: {}", e.message),
            );
            Err(e)
        }
    }
}

fn register_stop(stop: &Arc<AtomicBool>) -> Result<()> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(signal_error)?;
    }
    Ok(())
}

fn signal_error(e: std::io::Error) -> Error {
    Error::new(
        exit::SOFTWARE,
        format!("cannot install signal handler: {e}"),
        "",
    )
}
