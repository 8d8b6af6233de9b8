//! `qtool runners`: the configured runners and their handlers, as `mailman runner -l`.

use qtool::error::Result;
use qtool::handler::human_duration;

use super::load_config;
use crate::cli::{Global, RunnersArgs, TableFormat};
use crate::output::{print_table, table};

pub fn run(g: &Global, a: RunnersArgs) -> Result<i32> {
    let config = load_config(g)?;
    let rows: Vec<serde_json::Value> = config
        .runners
        .iter()
        .map(|(name, r)| {
            let handler = match &r.handler {
                Some(qtool::config::HandlerSpec::Exec(argv)) => format!("exec {}", argv.join(" ")),
                Some(qtool::config::HandlerSpec::Forward(q)) => format!("forward {q}"),
                Some(qtool::config::HandlerSpec::Discard) => "discard".into(),
                None => String::new(),
            };
            let handler = (!handler.is_empty()).then_some(handler);
            let path = match name.parse::<qtool::queue::QueueName>() {
                Ok(q) => config.switchboard(&q).location(),
                Err(_) => r.path.clone().unwrap_or_default().display().to_string(),
            };
            serde_json::json!({
                "name": name,
                "handler": handler,
                "instances": r.instances,
                "sleep_time": human_duration(r.sleep_time),
                "start": r.start,
                "timeout": r.timeout.map(human_duration),
                "max_restarts": r.max_restarts,
                "path": path,
            })
        })
        .collect();
    match a.format {
        TableFormat::Json => outln!("{}", serde_json::to_string_pretty(&rows).expect("JSON")),
        TableFormat::Table => {
            if rows.is_empty() {
                errln!(
                    "qtool: no runners configured ({})",
                    config
                        .source
                        .as_ref()
                        .map_or("no config file".to_string(), |p| p.display().to_string())
                );
                return Ok(0);
            }
            let mut t = table(&[
                "NAME",
                "HANDLER",
                "INSTANCES",
                "SLEEP",
                "START",
                "TIMEOUT",
                "MAX_RESTARTS",
                "PATH",
            ]);
            for r in &rows {
                let s = |k: &str| match &r[k] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".into(),
                    v => v.to_string(),
                };
                t.add_row(vec![
                    s("name"),
                    s("handler"),
                    s("instances"),
                    s("sleep_time"),
                    if r["start"] == true {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    s("timeout"),
                    s("max_restarts"),
                    s("path"),
                ]);
            }
            print_table(&t);
        }
    }
    Ok(0)
}
