//! `qtool run-once RUNNER[:SLICE:RANGE]` (recovery plus one pass, for cron) and
//! `qtool run RUNNER[:SLICE:RANGE]` (passes until SIGTERM/SIGINT; SIGUSR1 stops and asks
//! the supervisor for a restart; SIGHUP reopens the log file).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use qtool::config::{Config, HandlerSpec};
use qtool::error::{exit, Error, Result};
use qtool::handler::Handler;
use qtool::queue::{QueueName, Slice};
use qtool::runner::{Counts, Event, Runner};
use qtool::supervisor::{self, Signals, Supervisor, SupervisorLock, EXIT_RESTART};

use super::load_config;
use crate::cli::{Global, RunArgs, RunOnceArgs, RunnerArgs};
use crate::log::{Level, Logger};

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

fn handler_spec(a: &RunnerArgs, config: &Config, name: &QueueName) -> Result<HandlerSpec> {
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

fn build_runner(
    spec: &str,
    a: &RunnerArgs,
    config: Arc<Config>,
    stop: Arc<AtomicBool>,
) -> Result<Runner> {
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
        grace: a.grace,
        recovered_at: Default::default(),
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
        Event::RecoveryFailed(fb, why) => log.log(
            Level::Error,
            &format!("{who}: cannot recover {fb} now, left as it is: {why}"),
        ),
        Event::RemovedTemp(n) => log.log(
            Level::Info,
            &format!("{who}: removed {n} temporary files left by crashed writers"),
        ),
        Event::Pass(_) => {}
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
        Event::Retrying(why, pause) => log.log(
            Level::Error,
            &format!("{who}: {why}; trying again in {}s", pause.as_secs()),
        ),
    }
}

fn summary(c: &Counts) -> String {
    format!(
        "{} done, {} kept, {} shunted, {} put back, {} preserved, {} recovered",
        c.done, c.kept, c.shunted, c.deferred, c.preserved, c.recovered
    )
}

pub fn run_once(g: &Global, once: RunOnceArgs) -> Result<i32> {
    let a = &once.common;
    let config = Arc::new(load_config(g)?);
    let stop = Arc::new(AtomicBool::new(false));
    register_stop(&stop)?;
    let runner = build_runner(&once.runner, a, config, stop)?;
    let mut log = Logger::new(a.log_file.clone(), g.verbose, g.quiet)?;
    let who = runner_label(&runner);
    let bar = crate::output::progress(Some(0), "entries");
    let mut sink = |e: Event| {
        match &e {
            Event::Pass(n) => bar.set_length(*n as u64),
            Event::Done(_)
            | Event::Kept(..)
            | Event::Shunted(..)
            | Event::Deferred(..)
            | Event::ShuntFailed(..) => bar.inc(1),
            Event::Preserved(..) if bar.length() != Some(0) => bar.inc(1),
            _ => {}
        }
        bar.suspend(|| log_event(&mut log, &who, e));
    };
    let mut counts = runner.recover(&mut sink)?;
    counts.add(&runner.one_pass(&mut sink)?);
    bar.finish_and_clear();
    log.log(Level::Info, &format!("{who}: {}", summary(&counts)));
    Ok(0)
}

pub fn run(g: &Global, run: RunArgs) -> Result<i32> {
    let a = &run.common;
    let Some(spec) = run.runner.as_deref() else {
        return supervise(g, a);
    };
    let config = Arc::new(load_config(g)?);
    let stop = Arc::new(AtomicBool::new(false));
    register_stop(&stop)?;
    let restart = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, restart.clone())
        .map_err(signal_error)?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, stop.clone())
        .map_err(signal_error)?;
    let runner = build_runner(spec, a, config, stop)?;
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

/// `qtool run --all`: the supervisor.
fn supervise(g: &Global, a: &RunnerArgs) -> Result<i32> {
    if a.forward.is_some() || a.discard || !a.exec.is_empty() {
        return Err(Error::usage(
            "run --all takes the handlers from the config",
            "define each runner's handler in the config, or run one runner with `qtool run RUNNER`",
        ));
    }
    let config = load_config(g)?;
    // One supervisor per queue directory; on Redis, one per host may run for the same
    // server (that is the point), and the consumer groups keep their runners apart.
    let lock = if config.is_redis() {
        None
    } else {
        Some(SupervisorLock::acquire(&config.queue_dir)?)
    };
    let signals = Signals::default();
    for (sig, flag) in [
        (signal_hook::consts::SIGTERM, &signals.stop),
        (signal_hook::consts::SIGINT, &signals.stop),
        (signal_hook::consts::SIGHUP, &signals.hup),
        (signal_hook::consts::SIGUSR1, &signals.usr1),
    ] {
        signal_hook::flag::register(sig, flag.clone()).map_err(signal_error)?;
    }
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_usize(sig, signals.stop_signal.clone(), sig as usize)
            .map_err(signal_error)?;
    }
    let mut log = Logger::new(a.log_file.clone(), g.verbose, g.quiet)?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, log.reopen_flag())
        .map_err(signal_error)?;
    let exe = std::env::current_exe().map_err(|e| {
        Error::new(
            exit::SOFTWARE,
            format!("cannot find the qtool executable: {e}"),
            "",
        )
    })?;
    let config_path = config
        .source
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or(p.clone()));
    let queue_dir = config.queue_dir.clone();
    let (log_file, verbose, quiet, grace) = (a.log_file.clone(), g.verbose, g.quiet, a.grace);
    let command = move |slot: &supervisor::Slot| {
        let mut c = std::process::Command::new(&exe);
        if let Some(p) = &config_path {
            c.arg("-C").arg(p);
        }
        c.arg("-d").arg(&queue_dir);
        if verbose {
            c.arg("-v");
        }
        if quiet {
            c.arg("-q");
        }
        c.arg("run").arg(slot.spec());
        c.arg("--grace").arg(format!("{}s", grace.as_secs_f64()));
        if let Some(f) = &log_file {
            c.arg("--log-file").arg(f);
        }
        c
    };
    let mut sup = Supervisor::new(&config, Box::new(command))?;
    log.log(
        Level::Info,
        &format!(
            "supervisor started for {} ({} runner processes; {})",
            config.queue_dir.display(),
            sup.slots.len(),
            lock.as_ref()
                .map_or("no lock: a Redis queue_dir".to_string(), |l| format!(
                    "lock {}",
                    l.path.display()
                ))
        ),
    );
    let code = sup.run(&signals, &mut |e| {
        use supervisor::Event as E;
        match e {
            E::Started(s, pid) => log.log(
                Level::Info,
                &format!("supervisor: started runner {} (pid {pid})", s.spec()),
            ),
            E::Exited(s, how) => log.log(
                Level::Info,
                &format!("supervisor: runner {} exited ({how})", s.spec()),
            ),
            E::Restarting(s, after) => log.log(
                Level::Info,
                &format!(
                    "supervisor: restarting runner {} in {} (restart {} of {})",
                    s.spec(),
                    qtool::handler::human_duration(after),
                    s.restarts,
                    s.max_restarts
                ),
            ),
            E::GaveUp(s) => log.log(
                Level::Error,
                &format!(
                    "supervisor: giving up on runner {} after {} restarts",
                    s.spec(),
                    s.restarts
                ),
            ),
            E::StartFailed(s, why) => log.log(
                Level::Error,
                &format!("supervisor: cannot start runner {}: {why}", s.spec()),
            ),
            E::Signal(name) => log.log(
                Level::Info,
                &format!("supervisor: got SIG{name}, passing it on"),
            ),
        }
    });
    if code == 0 {
        log.log(Level::Info, "supervisor stopped");
    } else {
        log.log(
            Level::Error,
            "supervisor: every runner was given up on; exiting",
        );
    }
    drop(lock);
    Ok(code)
}
