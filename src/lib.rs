//! qtool: GNU Mailman 3's switchboards and runners as a library.
//!
//! The model, in the order a message travels:
//!
//! - A **queue** is a directory, `<queue_dir>/<name>` ([`queue::dir`]), or a set of
//!   streams on a Redis server or cluster ([`queue::redis`]); its name is a
//!   [`QueueName`], validated before any path or key is built ([`queue::name`]).
//! - An **entry** is one file, `<filebase>.pck`, holding a message and its [`Metadata`].
//!   The [`Filebase`] is `<time>+<sha1>`: the time gives the FIFO order, the digest the
//!   entry's place in the hash space that [`Slice`]s divide ([`queue::filebase`]).
//!   The file is qtool's own layout or a Mailman 3 pickle ([`queue::entry`],
//!   [`queue::mailman`]).
//! - A [`Switchboard`] is one queue, on either backend: the interface the rest of the
//!   library uses ([`queue`]). It enqueues entries durably, alone or in a group commit
//!   ([`queue::Batch`]); it claims them (in a directory `.pck` → locked `.bak`; on Redis
//!   `XREADGROUP`) so that concurrent processes never handle the same one; it finishes,
//!   puts back or preserves them (in `bad`); and it recovers what crashed processes
//!   held.
//! - A [`runner::Runner`] drains a queue, or a slice of it: it recovers orphans, then
//!   passes over the ready entries in FIFO order, gives each a `lang`, and hands it to a
//!   [`handler::Handler`] (a program, another queue, or the bin). Done entries are
//!   removed, kept ones re-enqueued, failed ones shunted with the reason.
//! - A [`supervisor::Supervisor`] keeps one runner process per slice alive (`run --all`).
//! - [`config::Config`] says where the queues are and what each runner does;
//!   [`admin`] and [`inspect`] are what `unshunt`, `move`, `delete`, `list` and `stats`
//!   are made of.
//!
//! Errors carry the exit code the command-line tool uses ([`error`]). Nothing here
//! writes to a terminal: runners and the supervisor report [`runner::Event`]s and
//! [`supervisor::Event`]s, and the caller decides what to print.

pub mod admin;
pub mod config;
pub mod error;
pub mod fault;
pub mod handler;
pub mod inspect;
pub mod metadata;
pub mod queue;
pub mod runner;
pub mod supervisor;

pub use error::{Error, Result};
pub use metadata::{Metadata, Value};
pub use queue::{Filebase, QueueName, Slice, Switchboard};
