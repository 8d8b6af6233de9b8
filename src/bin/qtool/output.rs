//! Terminal manners shared by the commands: tables with borders and colour only on a
//! terminal (and colour only without `NO_COLOR`), plain aligned columns in pipes.

/// `eprintln!` that never panics: a closed or full standard error (`2>&1 | head`)
/// loses the message instead of ending the command with a panic.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics (see `errln!`).
macro_rules! errout {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

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
pub fn progress(total: Option<u64>, what: &'static str) -> Progress {
    Progress {
        shown: std::io::stderr().is_terminal(),
        bar: total.is_some(),
        what,
        state: std::cell::RefCell::new(ProgressState {
            pos: 0,
            len: total.unwrap_or(0),
            start: std::time::Instant::now(),
            drawn: None,
            tick: 0,
        }),
    }
}

/// A one-line progress display: `{bar} {pos}/{len} {what} ({rate}/s, eta {eta})`, or
/// `{spinner} {pos} {what} ({rate}/s)` when the total is unknown; redrawn at most 20
/// times a second. (Hand-written rather than a progress crate: the one used before
/// pulled in libm, one more shared library to load in every process, for `powf`.)
pub struct Progress {
    shown: bool,
    bar: bool,
    what: &'static str,
    state: std::cell::RefCell<ProgressState>,
}

struct ProgressState {
    pos: u64,
    len: u64,
    start: std::time::Instant,
    drawn: Option<std::time::Instant>,
    tick: usize,
}

const SPINNER: &[char] = &[
    '⠁', '⠁', '⠉', '⠙', '⠚', '⠒', '⠂', '⠂', '⠒', '⠲', '⠴', '⠤', '⠄', '⠄', '⠤', '⠠', '⠠', '⠤', '⠦',
    '⠖', '⠒', '⠐', '⠐', '⠒', '⠓', '⠋', '⠉', '⠈', '⠈',
];

impl Progress {
    pub fn inc(&self, n: u64) {
        self.state.borrow_mut().pos += n;
        self.draw(false);
    }

    pub fn set_length(&self, len: u64) {
        self.state.borrow_mut().len = len;
        self.draw(false);
    }

    pub fn length(&self) -> Option<u64> {
        self.bar.then(|| self.state.borrow().len)
    }

    /// Runs `f` with the line cleared (for log lines), then draws it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.clear();
        let r = f();
        self.draw(true);
        r
    }

    pub fn finish_and_clear(&self) {
        self.clear();
        self.state.borrow_mut().drawn = None;
    }

    fn clear(&self) {
        if self.shown && self.state.borrow().drawn.is_some() {
            errout!("\r\x1b[2K");
        }
    }

    fn draw(&self, force: bool) {
        if !self.shown {
            return;
        }
        let mut st = self.state.borrow_mut();
        let now = std::time::Instant::now();
        if !force
            && st
                .drawn
                .is_some_and(|t| now.duration_since(t).as_millis() < 50)
        {
            return;
        }
        st.drawn = Some(now);
        st.tick = (st.tick + 1) % SPINNER.len();
        let secs = now.duration_since(st.start).as_secs_f64();
        let rate = if secs > 0.0 {
            st.pos as f64 / secs
        } else {
            0.0
        };
        let line = if self.bar {
            let filled = (st.pos.min(st.len) * 30).checked_div(st.len).unwrap_or(0) as usize;
            let left = st.len.saturating_sub(st.pos);
            let eta = if rate > 0.0 { left as f64 / rate } else { 0.0 };
            format!(
                "{}{} {}/{} {} ({}/s, eta {})",
                "█".repeat(filled),
                "░".repeat(30 - filled),
                st.pos,
                st.len,
                self.what,
                human_rate(rate),
                human_duration(eta)
            )
        } else {
            format!(
                "{} {} {} ({}/s)",
                SPINNER[st.tick],
                st.pos,
                self.what,
                human_rate(rate)
            )
        };
        errout!("\r\x1b[2K{line}");
    }
}

/// A rate as `1,234.5678`: four decimals at most, trailing zeros dropped.
fn human_rate(rate: f64) -> String {
    let text = format!("{rate:.4}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        out.push(c);
        let rest = int.len() - i - 1;
        if rest > 0 && rest % 3 == 0 {
            out.push(',');
        }
    }
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A duration as `42s`, `3m`, `5h`, `2d`: the largest unit of which it holds about two
/// or more.
fn human_duration(secs: f64) -> String {
    const UNITS: &[(f64, char)] = &[
        (365.0 * 86400.0, 'y'),
        (7.0 * 86400.0, 'w'),
        (86400.0, 'd'),
        (3600.0, 'h'),
        (60.0, 'm'),
        (1.0, 's'),
    ];
    let mut idx = UNITS.len() - 1;
    for (i, pair) in UNITS.windows(2).enumerate() {
        let ((cur, _), (next, _)) = (pair[0], pair[1]);
        if secs + next / 2.0 >= cur * 1.5 {
            idx = i;
            break;
        }
    }
    let (unit, name) = UNITS[idx];
    let mut n = (secs / unit).round() as u64;
    if idx < UNITS.len() - 1 {
        n = n.max(2);
    }
    format!("{n}{name}")
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
        errln!("qtool: cannot write to standard output: {e}");
        std::process::exit(qtool::error::exit::IOERR);
    }
}

/// `println!` for command output, through [`write_line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
