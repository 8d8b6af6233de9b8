//! `qtool`: the command-line face of the qtool library. Each command lives in its own
//! file under `cmd/`, parses its arguments, calls the library and prints.

// qtool starts from C's `main` (below), not through std's runtime start-up. (This
// crate has no unit tests: Cargo.toml sets `test = false` for it.)
#![no_main]

#[macro_use]
mod output;
mod cli;
mod cmd;
mod log;

use std::io::Write;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

/// The process entry point, in place of std's: a single enqueue is one process per
/// message (an MTA's pipe transport), and std's start-up reads and parses
/// `/proc/self/maps` (glibc's `pthread_getattr_np`, for the main thread's stack-overflow
/// guard) — about 0.15 ms of a 1.1 ms `qtool --version` here. This keeps what std's
/// start-up does that qtool relies on: standard descriptors 0-2 that are closed are
/// reopened on `/dev/null` (so no entry file can become "standard output"), SIGPIPE is
/// ignored (a closed pipe is an `EPIPE` error; children still start with the default,
/// as std resets it when it spawns them), a panic exits 101 and standard output is
/// flushed at the end. What is lost: std's "has overflowed its stack" message (a stack
/// overflow is a plain SIGSEGV), and panics name the thread `<unnamed>` not `main`.
/// Arguments are unaffected: glibc hands them to std through `.init_array`.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: called once, first, on the only thread; plain libc calls.
    unsafe {
        sanitize_standard_fds();
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let code = std::panic::catch_unwind(run).unwrap_or(101);
    let _ = std::io::stdout().flush();
    libc::c_int::from(code)
}

/// As std's start-up does: any of descriptors 0, 1 and 2 that is closed is opened on
/// `/dev/null`, so that files opened later do not take those numbers.
unsafe fn sanitize_standard_fds() {
    let dev_null = c"/dev/null".as_ptr();
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        if libc::poll(fds.as_mut_ptr(), 3, 0) != -1 {
            break;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINVAL | libc::EAGAIN | libc::ENOMEM) => {
                // poll(2) unusable (RLIMIT_NOFILE, memory): ask each descriptor.
                for fd in 0..3 {
                    if libc::fcntl(fd, libc::F_GETFD) == -1
                        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
                        && libc::open(dev_null, libc::O_RDWR, 0) == -1
                    {
                        libc::abort();
                    }
                }
                return;
            }
            _ => libc::abort(),
        }
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 && libc::open(dev_null, libc::O_RDWR, 0) == -1 {
            libc::abort();
        }
    }
}

/// Parses the command line, runs the command, and returns the exit status.
fn run() -> u8 {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let code = match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            errln!("qtool: {}", e.message);
            if !e.hint.is_empty() {
                errln!("qtool: {}", e.hint);
            }
            e.code
        }
    };
    code.clamp(0, 255) as u8
}

/// `Cli::try_parse`, except that the command tree and the matches are not dropped: the
/// process is short and freeing clap's tree is a measurable share of a single enqueue's
/// start-up (an MTA starts one process per message).
fn parse() -> Result<cli::Cli, clap::Error> {
    let cmd = Box::leak(Box::new(cli::Cli::command()));
    let matches = Box::leak(Box::new(cmd.try_get_matches_from_mut(std::env::args_os())?));
    cli::Cli::from_arg_matches_mut(matches).map_err(|e| e.format(cmd))
}

/// Argument errors in qtool's shape: what is wrong, then where to read more, on two
/// lines, exit 2. Help and version go to stdout as usual.
fn usage_error(e: clap::Error) -> u8 {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            2
        } else {
            0
        };
    }
    let text = e.render().to_string();
    // The message is the first paragraph, folded onto one line.
    let first: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let first = first.join(" ");
    let first = first.trim_start_matches("error: ");
    let usage = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| format!("usage: {u}; see --help"))
        .unwrap_or_else(|| "see qtool --help".to_string());
    errln!("qtool: {first}");
    errln!("qtool: {usage}");
    2
}
