//! `QueueName`: a queue's name, validated once. It is the only way to build the path of
//! a queue directory, so `..`, `/`, NUL and control characters never reach the disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// A valid queue name: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 200 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// The queue of entries whose processing failed.
    pub fn shunt() -> Self {
        QueueName("shunt".into())
    }

    /// The queue of preserved entries.
    pub fn bad() -> Self {
        QueueName("bad".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<queue_dir>/<name>`.
    pub fn dir_in(&self, queue_dir: &Path) -> PathBuf {
        queue_dir.join(&self.0)
    }
}

impl FromStr for QueueName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 200
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(QueueName(s.to_string()))
        } else {
            Err(Error::usage(
                format!("invalid queue name {:?}", s),
                "a queue name is a letter or digit followed by letters, digits, '.', '_' or '-'",
            ))
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["in", "out", "a.b_c-d", "0", "Shunt9"] {
            assert!(good.parse::<QueueName>().is_ok(), "{good}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", ".hidden", "-x", "a\0b", "a\nb", "é",
        ] {
            assert!(bad.parse::<QueueName>().is_err(), "{bad:?}");
        }
    }
}
