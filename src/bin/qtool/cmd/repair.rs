//! `qtool unshunt`, `qtool move`, `qtool delete`: repairs by hand. Each entry's fate is
//! printed on standard output (`shunt/<fb> -> in/<new>`, `deleted in/<fb>`); entries that
//! could not be handled are named on standard error and stay where they were. The exit
//! status is 0 when every entry was handled, else the code of the first failure.

use qtool::admin::{self, Done};
use qtool::error::Result;
use qtool::queue::{Filebase, QueueName};

use super::load_config;
use crate::cli::{DeleteArgs, Global, MoveArgs, UnshuntArgs};

fn filebases(texts: &[String]) -> Result<Vec<Filebase>> {
    texts.iter().map(|t| super::parse_filebase(t)).collect()
}

fn report(g: &Global, from: &str, done: Vec<Done>) -> i32 {
    let mut code = 0;
    for d in done {
        match d {
            Done::Moved { from: fb, to, new } => outln!("{from}/{fb} -> {to}/{new}"),
            Done::Deleted(fb) => outln!("deleted {from}/{fb}"),
            Done::Skipped(fb, e) => {
                errln!("qtool: skipped {from}/{fb}: {}", e.message);
                if g.verbose && !e.hint.is_empty() {
                    errln!("qtool: {}", e.hint);
                }
                if code == 0 {
                    code = e.code;
                }
            }
        }
    }
    code
}

pub fn unshunt(g: &Global, a: UnshuntArgs) -> Result<i32> {
    let config = load_config(g)?;
    let done = admin::unshunt(&config, &filebases(&a.filebases)?, a.discard)?;
    Ok(report(g, "shunt", done))
}

pub fn move_(g: &Global, a: MoveArgs) -> Result<i32> {
    let config = load_config(g)?;
    let from: QueueName = a.queue.parse()?;
    let to: QueueName = a.to.parse()?;
    let done = admin::move_entries(&config, &from, &filebases(&a.filebases)?, &to)?;
    Ok(report(g, from.as_str(), done))
}

pub fn delete(g: &Global, a: DeleteArgs) -> Result<i32> {
    let config = load_config(g)?;
    let queue: QueueName = a.queue.parse()?;
    let done = admin::delete(&config, &queue, &filebases(&a.filebases)?)?;
    Ok(report(g, queue.as_str(), done))
}
