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
    if !g.quiet {
        eprintln!(
            "{}: {} recovered, {} preserved, {} held by live processes, {} temporary files removed",
            sb.name(),
            r.recovered.len(),
            r.preserved.len(),
            r.busy,
            r.removed_tmp
        );
    }
    Ok(0)
}
