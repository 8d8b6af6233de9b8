//! Log lines for runners and the supervisor: `<UTC time> qtool[<pid>] <text>`, to
//! standard error or a file that SIGHUP reopens (for logrotate).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use qtool::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Error,
}

pub struct Logger {
    path: Option<PathBuf>,
    file: Option<File>,
    pub verbose: bool,
    pub quiet: bool,
    reopen: Arc<AtomicBool>,
}

impl Logger {
    pub fn new(path: Option<PathBuf>, verbose: bool, quiet: bool) -> Result<Logger> {
        let mut logger = Logger {
            path,
            file: None,
            verbose,
            quiet,
            reopen: Arc::new(AtomicBool::new(false)),
        };
        logger.open()?;
        Ok(logger)
    }

    fn open(&mut self) -> Result<()> {
        if let Some(path) = &self.path {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .at("cannot open log file", path)
                .map_err(|e: Error| {
                    e.with_hint("check --log-file and the directory's permissions")
                })?;
            self.file = Some(f);
        }
        Ok(())
    }

    /// The flag a SIGHUP handler sets to have the log file reopened.
    pub fn reopen_flag(&self) -> Arc<AtomicBool> {
        self.reopen.clone()
    }

    pub fn log(&mut self, level: Level, text: &str) {
        if level == Level::Debug && !self.verbose {
            return;
        }
        if level == Level::Info && self.quiet {
            return;
        }
        if self.reopen.swap(false, Ordering::Relaxed) {
            let _ = self.open();
        }
        let line = format!("{} qtool[{}] {}\n", utc_now(), std::process::id(), text);
        match &mut self.file {
            Some(f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
