//! `qtool recover QUEUE`: recover orphaned `.bak` files now (what every runner does at
//! start), leaving those a live process holds.

use qtool::error::Result;
use qtool::queue::{QueueName, Slice};

use super::{bad, load_config, switchboard};
use crate::cli::{Global, RecoverArgs};

pub fn run(g: &Global, a: RecoverArgs) -> Result<i32> {
    let config = load_config(g)?;
    let sb = switchboard(&config, &a.queue)?;
    let r = sb.recover(Slice::ALL, &bad(&config))?;
    for fb in &r.recovered {
        outln!("recovered {}/{fb}", sb.name());
    }
    for (fb, why) in &r.preserved {
        outln!(
            "preserved {}/{fb} in {}: {why}",
            sb.name(),
            QueueName::bad()
        );
    }
    for (fb, why) in &r.failed {
        errln!(
            "qtool: cannot recover {}/{fb} now, left as it is: {why}",
            sb.name()
        );
    }
    if !g.quiet {
        errln!(
            "qtool: {}: {} recovered, {} preserved, {} held by live processes, {} temporary files removed",
            sb.name(),
            r.recovered.len(),
            r.preserved.len(),
            r.busy,
            r.removed_tmp
        );
    }
    Ok(if r.failed.is_empty() {
        0
    } else {
        qtool::error::exit::TEMPFAIL
    })
}
