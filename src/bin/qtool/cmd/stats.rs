//! `qtool stats [QUEUE]...`: per queue, entries by state, total size, the oldest age, and
//! an age histogram like Postfix's qshape — from file names and sizes alone.

use qtool::error::Result;
use qtool::inspect::{self, AGE_BUCKETS};

use super::load_config;
use crate::cli::{Global, StatsArgs, TableFormat};
use crate::output::{human_age, now, print_table, table};

pub fn run(g: &Global, a: StatsArgs) -> Result<i32> {
    let config = load_config(g)?;
    let queues = super::queues_or_all(&config, &a.queues)?;
    let now = now();
    let stats = queues
        .iter()
        .map(|q| inspect::stats(&config.switchboard(q), now))
        .collect::<Result<Vec<_>>>()?;
    match a.format {
        TableFormat::Json => {
            let items: Vec<serde_json::Value> = stats
                .iter()
                .map(|s| {
                    let ages: serde_json::Map<String, serde_json::Value> = AGE_BUCKETS
                        .iter()
                        .zip(s.ages)
                        .map(|((name, _), n)| (name.to_string(), n.into()))
                        .collect();
                    serde_json::json!({
                        "queue": s.queue,
                        "ready": s.ready,
                        "claimed": s.claimed,
                        "preserved": s.preserved,
                        "bytes": s.bytes,
                        "oldest": s.oldest,
                        "ages": ages,
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&items).expect("JSON"));
        }
        TableFormat::Table => {
            let mut headers = vec!["QUEUE", "READY", "CLAIMED", "PRESERVED", "BYTES", "OLDEST"];
            headers.extend(AGE_BUCKETS.iter().map(|(n, _)| *n));
            let mut t = table(&headers);
            for s in &stats {
                let mut row = vec![
                    s.queue.clone(),
                    s.ready.to_string(),
                    s.claimed.to_string(),
                    s.preserved.to_string(),
                    s.bytes.to_string(),
                    s.oldest.map_or("-".into(), human_age),
                ];
                row.extend(s.ages.iter().map(|n| n.to_string()));
                t.add_row(row);
            }
            print_table(&t);
        }
    }
    Ok(0)
}
