//! `qtool dump QUEUE FILEBASE` or `qtool dump PATH`: an entry's metadata as Mailman's
//! `dump_msgdata` prints it (as `dequeue` would hand it to a runner), or as YAML/JSON.

use std::io::{self, Write};
use std::path::Path;

use qtool::error::{IoContext, Result};
use qtool::metadata;
use qtool::queue::{self, Filebase};

use super::{load_config, switchboard};
use crate::cli::{DumpArgs, DumpFormat, Global};

pub fn run(g: &Global, a: DumpArgs) -> Result<i32> {
    let mut entry = match a.target.as_slice() {
        [path] => queue::read_path(Path::new(path))?,
        [queue, filebase] => {
            let config = load_config(g)?;
            let sb = switchboard(&config, queue)?;
            let fb: Filebase = super::parse_filebase(filebase)?;
            sb.read(&fb)?
        }
        _ => unreachable!("clap allows one or two values"),
    };
    let mut meta = entry.dequeued_metadata();
    if !a.all {
        meta.remove("received_time");
    }
    for key in &a.skip {
        meta.remove(key);
    }
    let stdout = Path::new("<stdout>");
    let mut out = io::stdout().lock();
    match a.format {
        DumpFormat::Text => {
            out.write_all(metadata::dump_msgdata(&meta, &[]).as_bytes())
                .at("cannot write", stdout)?;
            if a.message {
                out.write_all(b"\n").at("cannot write", stdout)?;
                io::copy(
                    &mut entry.message().at("cannot read entry", stdout)?,
                    &mut out,
                )
                .at("cannot write", stdout)?;
            }
        }
        DumpFormat::Yaml => {
            out.write_all(metadata::to_yaml(&meta).as_bytes())
                .at("cannot write", stdout)?;
            if a.message {
                out.write_all(b"...\n").at("cannot write", stdout)?;
                io::copy(
                    &mut entry.message().at("cannot read entry", stdout)?,
                    &mut out,
                )
                .at("cannot write", stdout)?;
            }
        }
        DumpFormat::Json => {
            let mut doc = serde_json::Map::new();
            doc.insert("metadata".into(), metadata::to_json(&meta));
            if a.message {
                let mut bytes = Vec::new();
                io::copy(
                    &mut entry.message().at("cannot read entry", stdout)?,
                    &mut bytes,
                )
                .at("cannot read entry", stdout)?;
                doc.insert(
                    "message".into(),
                    serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                );
            }
            let text = serde_json::to_string_pretty(&serde_json::Value::Object(doc))
                .expect("JSON of plain values");
            writeln!(out, "{text}").at("cannot write", stdout)?;
        }
    }
    out.flush().at("cannot write", stdout)?;
    Ok(0)
}
