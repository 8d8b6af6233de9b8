//! The command-line definition: every flag is defined once here, with its help; the man
//! pages and shell completions are generated from it (`qtool completions`, `qtool man`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const LONG_HELP: &str = "Examples:
  qtool -d /tmp/q enqueue in message.eml
  qtool -d /tmp/q run-once in --forward out
  qtool -d /tmp/q dump out 1733342400.1234567+<sha1>

Configuration:
  -C FILE, else $QTOOL_CONFIG, else ./qtool.yaml, else /etc/qtool/qtool.yaml, else
  built-in defaults (queue_dir /var/spool/qtool). Keys: queue_dir (a directory,
  redis://HOST:PORT/DB for Redis Streams, or redis+cluster://HOST:PORT,HOST:PORT),
  default_language, queue_format
  (native|mailman), min_free, claim_timeout (Redis), lists: {LISTID:
  {preferred_language}}, runners: {NAME: {handler: {exec: [PROGRAM, ARG...]} |
  {forward: QUEUE} | discard, instances (power of two), sleep_time, timeout,
  max_restarts, start, path (a directory or a redis:// URL)}}.
  Unknown keys and bad values are refused (exit 78).

Files:
  <queue_dir>/<queue>/<time>+<sha1>.pck   ready entry
  ....bak  claimed by a running process    ....psv  preserved (in bad)
  ....pck.tmp  being written               <queue_dir>/.qtool-supervisor.lock
  On Redis: streams qtool:{<queue>.<i>} (group qtool), fields fb, meta, msg.

Exit status:
  0 success; 1 nothing to do; 2 usage; 65 bad data; 66 missing input;
  69 every runner given up on (run --all); 73 cannot create; 74 I/O error;
  75 temporary failure (disk full, Redis unreachable, entry or lock held);
  78 bad configuration.";

#[derive(Debug, Parser)]
#[command(
    name = "qtool",
    version,
    about = "Mailman 3 style mail queues: switchboards and runners",
    long_about = "qtool keeps mail queues as directories of crash-safe entry files (Mailman 3's \
switchboards) and drains them through handlers with runners: processes that recover crashed \
work, hand each entry to a program, another queue or the bin, and shunt failures for an admin \
to repair. It reads and writes GNU Mailman 3's own queue files.",
    after_help = "Examples:\n  qtool -d /tmp/q enqueue in message.eml\n  qtool -d /tmp/q run-once in --forward out\n  qtool -d /tmp/q dump out 1733342400.1234567+<sha1>",
    after_long_help = LONG_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]
    #[arg(
        short = 'C',
        long = "config",
        env = "QTOOL_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the
    /// config's queue_dir)
    #[arg(
        short = 'd',
        long = "queue-dir",
        env = "QTOOL_QUEUE_DIR",
        global = true,
        value_name = "DIR"
    )]
    pub queue_dir: Option<PathBuf>,
    /// Say more: per-entry log lines
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Say less: no summaries, only errors and entries that failed
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The subcommands' arguments are deferred: only the subcommand being run has its
/// arguments built (clap builds the others only for help, completions and man pages),
/// which matters to a process started once per message (`qtool enqueue` from an MTA).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Add messages to a queue
    #[command(
        after_help = "Examples:\n  qtool enqueue in post.eml -m listid=test.example.com\n  qtool enqueue in --mbox archive.mbox\n  formail -s ... | qtool enqueue in -"
    )]
    Enqueue(EnqueueArgs),
    /// Take the oldest (or a named) entry out of a queue
    #[command(
        after_help = "Examples:\n  qtool dequeue in > msg.eml\n  qtool dequeue in -o msg.eml --meta-out msg.yaml"
    )]
    Dequeue(DequeueArgs),
    /// Recover, then drain a queue once through a handler (for cron)
    #[command(
        name = "run-once",
        after_help = "Examples:\n  qtool run-once in --forward out\n  qtool run-once in:0:2 -- /usr/local/bin/deliver --quiet\n  qtool run-once out --discard"
    )]
    RunOnce(RunOnceArgs),
    /// Run a runner until stopped, or supervise all of them with --all
    #[command(
        after_help = "Examples:\n  qtool run in -- /usr/local/libexec/on-post\n  qtool run --all --log-file /var/log/qtool.log"
    )]
    Run(RunArgs),
    /// Print an entry's metadata as Mailman's dump_msgdata does
    #[command(
        after_help = "Examples:\n  qtool dump shunt 1733342400.1234567+<sha1>\n  qtool dump /var/lib/mailman3/queue/shunt/1733342400.1234567+<sha1>.pck --message"
    )]
    Dump(DumpArgs),
    /// List entries in FIFO order: state, age, size, list, From, Subject
    #[command(
        after_help = "Examples:\n  qtool list shunt\n  qtool list in --older-than 2h --listid test.example.com\n  qtool list --format names bad | xargs qtool delete bad"
    )]
    List(ListArgs),
    /// Per queue: entries by state, size, oldest age, and an age histogram
    #[command(after_help = "Examples:\n  qtool stats\n  qtool stats in out --format json")]
    Stats(StatsArgs),
    /// Move shunted entries back to the queue they failed in (or discard them)
    #[command(
        after_help = "Examples:\n  qtool unshunt\n  qtool unshunt 1733342400.1234567+<sha1>\n  qtool unshunt --discard 1733342400.1234567+<sha1>"
    )]
    Unshunt(UnshuntArgs),
    /// Move entries to another queue, metadata unchanged
    #[command(
        name = "move",
        after_help = "Example:\n  qtool move shunt 1733342400.1234567+<sha1> --to out"
    )]
    Move(MoveArgs),
    /// Delete entries (never one a runner is working on)
    #[command(after_help = "Example:\n  qtool delete bad 1733342400.1234567+<sha1>")]
    Delete(DeleteArgs),
    /// Recover orphaned claimed entries (.bak) of crashed processes now
    #[command(after_help = "Example:\n  qtool recover in")]
    Recover(RecoverArgs),
    /// List the configured runners and their handlers
    #[command(after_help = "Example:\n  qtool -C /etc/qtool/qtool.yaml runners")]
    Runners(RunnersArgs),
    /// Print shell completions
    #[command(after_help = "Example:\n  qtool completions bash > /etc/bash_completion.d/qtool")]
    Completions(CompletionsArgs),
    /// Write the man pages (for packagers; the project ships them in man/)
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The queue to add to
    pub queue: String,
    /// Message files, one message each; none or `-` reads standard input
    pub files: Vec<PathBuf>,
    /// Enqueue every message of an mbox file
    #[arg(long, value_name = "FILE")]
    pub mbox: Vec<PathBuf>,
    /// Enqueue every message of a Maildir (cur/ and new/), leaving it in place
    #[arg(long, value_name = "DIR")]
    pub maildir: Vec<PathBuf>,
    /// Metadata KEY=VALUE, VALUE read as YAML (n=3 is a number, r=[a, b] a list)
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Metadata from a YAML mapping in FILE (-m wins over it)
    #[arg(long, value_name = "FILE")]
    pub meta_file: Option<PathBuf>,
    /// Mark the entries as plain text (_parsemsg: true, Mailman's _plaintext)
    #[arg(long)]
    pub plaintext: bool,
}

#[derive(Debug, Args)]
pub struct DequeueArgs {
    /// The queue to take from
    pub queue: String,
    /// A particular entry (default: the oldest)
    pub filebase: Option<String>,
    /// Write the message to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the metadata as YAML to FILE
    #[arg(long, value_name = "FILE")]
    pub meta_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The runner (a queue name), optionally a slice of it: NAME:SLICE:RANGE
    #[arg(required_unless_present = "all", value_name = "RUNNER[:SLICE:RANGE]")]
    pub runner: Option<String>,
    /// Supervise every runner of the config with `start: true`
    #[arg(long, conflicts_with = "runner")]
    pub all: bool,
    #[command(flatten)]
    pub common: RunnerArgs,
}

#[derive(Debug, Args)]
pub struct RunOnceArgs {
    /// The runner (a queue name), optionally a slice of it: NAME:SLICE:RANGE
    #[arg(value_name = "RUNNER[:SLICE:RANGE]")]
    pub runner: String,
    #[command(flatten)]
    pub common: RunnerArgs,
}

// What `run` and `run-once` share: the handler, the log, the stop grace. (A plain
// comment: a doc comment would become the about text of both, as their arguments are
// built late; see `Command`.)
#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// Handler: enqueue each entry to QUEUE
    #[arg(long, value_name = "QUEUE", conflicts_with_all = ["discard", "exec"])]
    pub forward: Option<String>,
    /// Handler: drop each entry
    #[arg(long, conflicts_with = "exec")]
    pub discard: bool,
    /// Log to FILE instead of standard error (reopened on SIGHUP)
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// After a stop, how long a running handler may go on before it is killed and its
    /// entry put back
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// Handler: run PROGRAM with each message on its standard input (no shell)
    #[arg(last = true, value_name = "PROGRAM [ARG]...")]
    pub exec: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DumpFormat {
    /// Mailman's dump_msgdata: sorted, padded `key: value` lines
    Text,
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// QUEUE FILEBASE, or the PATH of any entry file
    #[arg(required = true, num_args = 1..=2, value_name = "QUEUE FILEBASE | PATH")]
    pub target: Vec<String>,
    /// Print the message after the metadata
    #[arg(long)]
    pub message: bool,
    /// Show every key, received_time included
    #[arg(long)]
    pub all: bool,
    /// Hide KEY too (repeatable)
    #[arg(long, value_name = "KEY")]
    pub skip: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = DumpFormat::Text)]
    pub format: DumpFormat,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write qtool.1 and qtool-COMMAND.1 into
    pub dir: PathBuf,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    qtool::config::parse_duration(text)
        .ok_or_else(|| "expected a duration such as 0.5s, 30s, 2m or 1h30m".to_string())
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    /// Aligned columns (a bordered table on a terminal)
    Table,
    /// One JSON array of objects with stable field names
    Json,
    /// Filebases only, one per line
    Names,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TableFormat {
    /// Aligned columns (a bordered table on a terminal)
    Table,
    /// JSON
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Queues to list (default: every queue)
    pub queues: Vec<String>,
    /// Only entries older than AGE (e.g. 30m, 2h, 1d)
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
    /// Only entries for this list id
    #[arg(long, value_name = "LISTID")]
    pub listid: Option<String>,
    /// Only entries whose From contains TEXT (any case)
    #[arg(long, value_name = "TEXT")]
    pub from: Option<String>,
    /// Only entries whose Subject contains TEXT (any case)
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Queues (default: every queue)
    pub queues: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

#[derive(Debug, Args)]
pub struct UnshuntArgs {
    /// Entries of the shunt queue (default: all of them)
    pub filebases: Vec<String>,
    /// Delete them instead
    #[arg(long)]
    pub discard: bool,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The queue the entries are in
    pub queue: String,
    /// The entries to move
    #[arg(required = true)]
    pub filebases: Vec<String>,
    /// The queue to move them to
    #[arg(long, value_name = "QUEUE", required = true)]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The queue the entries are in
    pub queue: String,
    /// The entries to delete
    #[arg(required = true)]
    pub filebases: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The queue whose orphaned .bak files to recover
    pub queue: String,
}

#[derive(Debug, Args)]
pub struct RunnersArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}
