//! Repairs an admin makes by hand: `unshunt` (as Mailman's), `move` and `delete` (as
//! Postfix's `postsuper`). Each works through the claim protocol, so an entry a runner
//! holds is never touched, and reports per entry what happened; one entry that cannot
//! be handled never stops the others and is never lost.

use crate::config::Config;
use crate::error::{exit, Error, Result};
use crate::queue::{Claim, Claimed, Filebase, QueueName, Slice, State, Switchboard};

/// What happened to one entry.
#[derive(Debug)]
pub enum Done {
    /// Moved (unshunted) to a queue, under a new filebase.
    Moved {
        from: Filebase,
        to: QueueName,
        new: Filebase,
    },
    Deleted(Filebase),
    /// Not handled, and why; the entry is where it was.
    Skipped(Filebase, Error),
}

/// The entries named, or every ready entry of `sb` when none is named.
fn targets(sb: &Switchboard, named: &[Filebase]) -> Result<Vec<Filebase>> {
    if named.is_empty() {
        Ok(sb
            .ready(Slice::ALL)?
            .entries
            .into_iter()
            .map(|(fb, _)| fb)
            .collect())
    } else {
        Ok(named.to_vec())
    }
}

/// Claims `fb` for a manual operation; an entry held by a runner is refused.
fn claim_for_admin(sb: &Switchboard, bad: &Switchboard, fb: &Filebase) -> Result<Claim> {
    let claimed = match sb.locate(fb)? {
        // Preserved entries (in `bad`) can be deleted or moved out by hand too.
        Some(State::Preserved) => sb.claim_preserved(fb)?,
        _ => sb.claim(fb, bad)?,
    };
    match claimed {
        Claimed::Got(c) => Ok(c),
        Claimed::NotRegular => Err(Error::data(
            format!(
                "{fb} is not a regular file; it was moved to {}",
                bad.location()
            ),
            "",
        )),
        Claimed::Lost => Err(match sb.locate(fb)? {
            Some(State::Claimed) => Error::new(
                exit::TEMPFAIL,
                format!("{fb} in {} is claimed by a running process", sb.name()),
                "try again when it is done, or `qtool recover` if that process died",
            ),
            _ => Error::new(
                exit::NOINPUT,
                format!("no entry {fb} in {}", sb.name()),
                format!("`qtool list {}` shows its entries", sb.name()),
            ),
        }),
    }
}

/// Moves each shunted entry back to the queue in its `whichq` (default `in`), dropping
/// `shunt_reason`; or, with `discard`, deletes it (Mailman's `unshunt`).
pub fn unshunt(config: &Config, named: &[Filebase], discard: bool) -> Result<Vec<Done>> {
    let shunt = config.switchboard(&QueueName::shunt());
    let bad = config.switchboard(&QueueName::bad());
    let mut report = Vec::new();
    for fb in targets(&shunt, named)? {
        let claim = match claim_for_admin(&shunt, &bad, &fb) {
            Ok(c) => c,
            Err(e) => {
                report.push(Done::Skipped(fb, e));
                continue;
            }
        };
        if discard {
            shunt.finish(claim)?;
            report.push(Done::Deleted(fb));
            continue;
        }
        let mut entry = match claim.read() {
            Ok(e) => e,
            Err(mut e) => {
                // Name the file where the entry is left, not where it was read.
                let (bak, pck) = (claim.location(), shunt.entry_location(&fb, State::Ready));
                shunt.put_back(claim)?;
                e.message = e.message.replace(&bak, &pck);
                report.push(Done::Skipped(fb, e));
                continue;
            }
        };
        let mut meta = entry.metadata.clone();
        meta.remove("shunt_reason");
        let target = meta.get_str("whichq").unwrap_or("in").to_string();
        let target: QueueName = match target.parse() {
            Ok(q) => q,
            Err(e) => {
                shunt.put_back(claim)?;
                report.push(Done::Skipped(fb, e));
                continue;
            }
        };
        let dest = config.switchboard(&target);
        match dest.enqueue_entry(&mut entry, meta) {
            Ok(new) => {
                shunt.finish(claim)?;
                report.push(Done::Moved {
                    from: fb,
                    to: target,
                    new,
                });
            }
            Err(e) => {
                shunt.put_back(claim)?;
                report.push(Done::Skipped(fb, e));
            }
        }
    }
    Ok(report)
}

/// Moves entries of `from` to `to`, metadata unchanged.
pub fn move_entries(
    config: &Config,
    from: &QueueName,
    named: &[Filebase],
    to: &QueueName,
) -> Result<Vec<Done>> {
    let src = config.switchboard(from);
    let dest = config.switchboard(to);
    let bad = config.switchboard(&QueueName::bad());
    let mut report = Vec::new();
    for fb in named {
        let claim = match claim_for_admin(&src, &bad, fb) {
            Ok(c) => c,
            Err(e) => {
                report.push(Done::Skipped(fb.clone(), e));
                continue;
            }
        };
        let moved = claim.read().and_then(|mut entry| {
            let meta = entry.metadata.clone();
            dest.enqueue_entry(&mut entry, meta)
        });
        match moved {
            Ok(new) => {
                src.finish(claim)?;
                report.push(Done::Moved {
                    from: fb.clone(),
                    to: to.clone(),
                    new,
                });
            }
            Err(e) => {
                src.put_back(claim)?;
                report.push(Done::Skipped(fb.clone(), e));
            }
        }
    }
    Ok(report)
}

/// Deletes entries of `queue`.
pub fn delete(config: &Config, queue: &QueueName, named: &[Filebase]) -> Result<Vec<Done>> {
    let sb = config.switchboard(queue);
    let bad = config.switchboard(&QueueName::bad());
    let mut report = Vec::new();
    for fb in named {
        match claim_for_admin(&sb, &bad, fb) {
            Ok(claim) => {
                sb.finish(claim)?;
                report.push(Done::Deleted(fb.clone()));
            }
            Err(e) => report.push(Done::Skipped(fb.clone(), e)),
        }
    }
    Ok(report)
}
