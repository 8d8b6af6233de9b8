//! One error type for the library. Each error carries the exit code SPEC §5 gives it
//! (sysexits), a one-line statement of what failed (with the path or key involved) and,
//! where there is one, a hint saying what to do.

use std::fmt;
use std::io;
use std::path::Path;

/// Exit codes (SPEC §5).
pub mod exit {
    pub const OK: i32 = 0;
    pub const NOTHING: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const DATAERR: i32 = 65;
    pub const NOINPUT: i32 = 66;
    pub const SOFTWARE: i32 = 70;
    pub const CANTCREAT: i32 = 73;
    pub const IOERR: i32 = 74;
    pub const TEMPFAIL: i32 = 75;
    pub const CONFIG: i32 = 78;
}

#[derive(Debug)]
pub struct Error {
    pub code: i32,
    pub message: String,
    pub hint: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: i32, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn data(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::new(exit::DATAERR, message, hint)
    }

    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::new(exit::USAGE, message, hint)
    }

    pub fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::new(exit::CONFIG, message, hint)
    }

    /// An I/O failure on `path` while doing `what`. The exit code follows the cause:
    /// a missing file is 66, a full disk 75 (temporary), permission or creation
    /// problems 73, anything else 74.
    pub fn io(what: &str, path: &Path, err: io::Error) -> Self {
        let (code, hint) = match err.kind() {
            io::ErrorKind::NotFound => (exit::NOINPUT, "check the path"),
            io::ErrorKind::PermissionDenied => (
                exit::CANTCREAT,
                "check the owner and mode of the file and its directory",
            ),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => (
                exit::TEMPFAIL,
                "the disk is full: free some space and try again",
            ),
            _ if err.raw_os_error() == Some(libc::ENOSPC) => (
                exit::TEMPFAIL,
                "the disk is full: free some space and try again",
            ),
            _ => (exit::IOERR, ""),
        };
        Error::new(code, format!("{what} {}: {err}", path.display()), hint)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Adds "what failed, on which path" to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}
