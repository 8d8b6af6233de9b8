//! `qtool list [QUEUE]...`: entries in FIFO order with state, age, size, list id, From
//! and Subject (and why a shunted entry is there), as a table, JSON or bare filebases.

use comfy_table::Color;
use qtool::error::Result;
use qtool::inspect::{self, Listing};
use qtool::queue::State;

use super::{load_config, parse_age};
use crate::cli::{Global, ListArgs, ListFormat};
use crate::output::{coloured, human_age, now, print_table, table};

pub fn run(g: &Global, a: ListArgs) -> Result<i32> {
    let config = load_config(g)?;
    let queues = super::queues_or_all(&config, &a.queues)?;
    let older = a.older_than.as_deref().map(parse_age).transpose()?;
    let now = now();
    let mut rows: Vec<Listing> = Vec::new();
    for q in &queues {
        let (entries, strays) = inspect::list(&config.switchboard(q), now)?;
        if !g.quiet {
            for s in strays {
                errln!("qtool: {q}/{s}: not a queue entry, skipped");
            }
        }
        rows.extend(entries.into_iter().filter(|r| keep(r, &a, older)));
    }
    match a.format {
        ListFormat::Names => {
            for r in &rows {
                outln!("{}", r.filebase);
            }
        }
        ListFormat::Json => {
            let items: Vec<JsonRow> = rows.iter().map(JsonRow::from).collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&items).expect("JSON of plain values")
            );
        }
        ListFormat::Table => {
            if rows.is_empty() {
                if !g.quiet {
                    errln!("qtool: no entries");
                }
                return Ok(0);
            }
            let with_reason = rows.iter().any(|r| r.reason.is_some());
            let mut headers = vec![
                "QUEUE", "FILEBASE", "STATE", "AGE", "SIZE", "LISTID", "FROM", "SUBJECT",
            ];
            if with_reason {
                headers.push("REASON");
            }
            let mut t = table(&headers);
            for r in &rows {
                let state = match r.state {
                    State::Ready => coloured(r.state.name(), Color::Reset),
                    State::Claimed => coloured(r.state.name(), Color::Yellow),
                    State::Preserved => coloured(r.state.name(), Color::Red),
                };
                let mut cells = vec![
                    r.queue.clone().into(),
                    r.filebase.clone().into(),
                    state,
                    human_age(r.age).into(),
                    r.size.to_string().into(),
                    dash(&r.listid).into(),
                    dash(&r.from).into(),
                    dash(&r.subject).into(),
                ];
                if with_reason {
                    cells.push(dash(&r.reason).into());
                }
                t.add_row(cells);
            }
            print_table(&t);
        }
    }
    Ok(0)
}

fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn contains(hay: &Option<String>, needle: &str) -> bool {
    hay.as_deref()
        .is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()))
}

fn keep(r: &Listing, a: &ListArgs, older: Option<f64>) -> bool {
    older.is_none_or(|o| r.age >= o)
        && a.listid
            .as_deref()
            .is_none_or(|l| r.listid.as_deref() == Some(l))
        && a.from.as_deref().is_none_or(|f| contains(&r.from, f))
        && a.subject.as_deref().is_none_or(|s| contains(&r.subject, s))
}

/// One entry in `list --format json`: these field names are stable.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    age: f64,
    filebase: &'a str,
    from: Option<&'a str>,
    listid: Option<&'a str>,
    queue: &'a str,
    reason: Option<&'a str>,
    size: u64,
    state: &'static str,
    subject: Option<&'a str>,
    whichq: Option<&'a str>,
}

impl<'a> From<&'a Listing> for JsonRow<'a> {
    fn from(r: &'a Listing) -> Self {
        JsonRow {
            age: r.age,
            filebase: &r.filebase,
            from: r.from.as_deref(),
            listid: r.listid.as_deref(),
            queue: &r.queue,
            reason: r.reason.as_deref(),
            size: r.size,
            state: r.state.name(),
            subject: r.subject.as_deref(),
            whichq: r.whichq.as_deref(),
        }
    }
}
