//! `qtool completions SHELL` and the hidden `qtool man DIR`: generated from the clap
//! definition, so they never disagree with `--help`.

use std::io::Write;

use clap::CommandFactory;
use qtool::error::{Error, IoContext, Result};

use crate::cli::{Cli, CompletionsArgs, ManArgs};

pub fn completions(a: CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "qtool", &mut out);
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Error::io("cannot write", std::path::Path::new("<stdout>"), e))?;
    Ok(0)
}

pub fn man(a: ManArgs) -> Result<i32> {
    let cmd = Cli::command();
    std::fs::create_dir_all(&a.dir).at("cannot create", &a.dir)?;
    let write = |name: String, page: clap::Command| -> Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.to_uppercase())
            .date("")
            .render(&mut out)
            .map_err(|e| Error::io("cannot render man page", &a.dir, e))?;
        let path = a.dir.join(format!("{name}.1"));
        std::fs::write(&path, out).at("cannot write", &path)
    };
    write("qtool".into(), cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("qtool-{}", sub.get_name());
        write(name.clone(), sub.clone().name(name))?;
    }
    Ok(0)
}
