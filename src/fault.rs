//! Fault points for crash tests: when the environment variable `QTOOL_FAULT` names a
//! point, the process aborts there (as a `kill -9` would stop it), so a test can check
//! what each step of a write, claim or recovery leaves on disk. Unset (always, outside
//! tests), a point costs one comparison.

use std::io::Write;
use std::sync::OnceLock;

/// Aborts the process if `QTOOL_FAULT` is `name`.
pub fn point(name: &str) {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    let fault = FAULT.get_or_init(|| std::env::var("QTOOL_FAULT").ok());
    if fault.as_deref() == Some(name) {
        let _ = writeln!(
            std::io::stderr(),
            "qtool: QTOOL_FAULT={name}: aborting here"
        );
        std::process::abort();
    }
}

/// Every fault point, for the tests and the README.
pub const POINTS: &[&str] = &[
    "enqueue.written",
    "enqueue.synced",
    "enqueue.renamed",
    "claim.locked",
    "claim.renamed",
    "handler.done",
    "forward.written",
    "finish",
    "shunt.written",
    "recover.written",
    "recover.replaced",
];
