//! Terminal manners shared by the commands: tables with borders and colour only on a
//! terminal (and colour only without `NO_COLOR`), plain aligned columns in pipes.

use std::io::IsTerminal;

use comfy_table::{presets, Attribute, Cell, Color, ContentArrangement, Table};

/// True when standard output is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// True when colour may be used on standard output.
pub fn colour() -> bool {
    stdout_is_tty() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A table: bordered and fitted to the terminal on a TTY, plain columns otherwise.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    if stdout_is_tty() {
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
    }
    let colour = colour();
    t.set_header(headers.iter().map(|h| {
        let c = Cell::new(h);
        if colour {
            c.add_attribute(Attribute::Bold)
        } else {
            c
        }
    }));
    t
}

/// A cell coloured when colour is on.
pub fn coloured(text: impl ToString, color: Color) -> Cell {
    let c = Cell::new(text.to_string());
    if colour() {
        c.fg(color)
    } else {
        c
    }
}

/// Prints a table; plain tables lose their trailing spaces.
pub fn print_table(t: &Table) {
    for line in t.to_string().lines() {
        write_line(format_args!("{}", line.trim_end()));
    }
}

/// An age as an admin reads it: `42s`, `5m`, `3h`, `2d`.
pub fn human_age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A progress counter on standard error for long batches — only when standard error is
/// a terminal, never in pipes or cron. `total` is known for runner passes, not for mboxes.
pub fn progress(total: Option<u64>, what: &'static str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {msg} ({per_sec}, eta {eta})",
            )
            .expect("valid template"),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} {msg} ({per_sec})")
                .expect("valid template"),
        ),
    };
    bar.set_message(what);
    bar
}

/// Writes one line to standard output. A reader that went away (`qtool list | head`)
/// ends qtool quietly with status 0, as with any Unix filter; another write error is
/// reported (74). Never a panic, unlike `println!`.
pub fn write_line(args: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("qtool: cannot write to standard output: {e}");
        std::process::exit(qtool::error::exit::IOERR);
    }
}

/// `println!` for command output, through [`write_line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
