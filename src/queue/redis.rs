//! The Redis Streams backend: the same queues, entries and guarantees on a Redis server
//! that runners on many hosts share.
//!
//! # Mapping
//! - A queue is `S` streams, `qtool:{<queue>.<i>}` for `i` in `0..S`, each with its
//!   consumer group `qtool`. `S` is the queue's `instances` when the queue is first
//!   used, recorded in `qtool:{<queue>}:streams` and used from then on (so changing
//!   `instances` never strands entries). The hash tag `{<queue>.<i>}` puts each stream
//!   and its helper keys in one Redis Cluster slot, and the slices of a queue in
//!   different slots (`redis+cluster://HOST:PORT,...` talks to a cluster: every script
//!   and pipeline stays within one slot). An entry goes to the stream of its filebase's slice of the hash
//!   space; runner slice `k` of `N` reads the streams inside its slice, and a slice
//!   finer than the streams (more runners than streams) claims its own entries by name
//!   instead, so a slice takes only its part of the hash space on either backend.
//! - An entry is a stream entry with the fields `fb` (its filebase), `meta` (its
//!   metadata as qtool's YAML, one key per line) and `msg` (the message, byte for byte).
//!   `qtool:{<queue>.<i>}:index` maps each filebase to its stream ID and size, so
//!   entries can be found by name.
//! - **Ready**: in the stream, not pending in the group. **Claimed**: pending (delivered
//!   to a consumer, `<host>:<pid>`, by `XREADGROUP`), or held by a repair by name in
//!   `qtool:{<queue>.<i>}:held`. **Preserved**: every entry of the `bad` queue.
//! - Enqueue: a script adds the entry and its index line at once (`XADD` + `HSET`),
//!   refusing a filebase that is taken; a batch is one pipeline, so one round trip and,
//!   with `appendfsync always`, one `fsync` of the AOF.
//! - A runner's pass: `XREADGROUP ... >`. Finish: `XACK` + `XDEL` (and the index line),
//!   only if this consumer still owns the entry. Put back: the entry is added again at
//!   the end of its stream (same filebase, metadata and message) and the old one
//!   acknowledged and deleted, at once.
//! - Recovery: `XAUTOCLAIM` of entries idle longer than the claim timeout. Each such
//!   entry's delivery count says how often it was delivered: `_bak_count` grows by the
//!   deliveries beyond the first, and the recovery that brings it to `MAX_BAK_COUNT`
//!   moves the entry to `bad`. A live runner keeps its entry's idle time low while a
//!   handler runs ([`RedisQueue::keep_alive`]).
//! - A repair by name (`dequeue FB`, `move`, `delete`, `unshunt`) takes a ready entry
//!   out of the stream into the `held` hash, atomically, and gives it back or drops it
//!   when done; a held entry older than the claim timeout is recovered like a pending
//!   one.
//!
//! # What it promises
//! With `appendonly yes` and `appendfsync always`, Redis replies only after the command
//! is in the AOF and synced: an acknowledged enqueue, claim, finish or recovery survives
//! a crash of Redis or of the machine, the promise of the filesystem backend. With
//! `appendfsync everysec` up to a second of acknowledged work can be lost (entries come
//! back or vanish); without AOF, everything since the last snapshot.
//! A message is held whole in memory (Redis keeps it in RAM); the largest accepted is
//! [`MAX_MESSAGE_BYTES`]. When Redis cannot be reached every operation fails with 75
//! and nothing is changed that was not acknowledged: a failed enqueue may still have
//! been stored (the reply was lost), so a retry can store it twice (at-least-once).

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::Value as RV;
use sha1::Digest;

use super::{
    bumped_bak_count, BatchError, Claim, Claimed, Entry, Filebase, Held, QueueName, Recovery, Scan,
    Slice, Stamp, State, Switchboard, MAX_BAK_COUNT,
};
use crate::error::{exit, Error, Result};
use crate::metadata::{self, Metadata, Value, MAX_METADATA_BYTES};

/// The largest message a Redis queue accepts. Redis holds every entry in memory, and a
/// runner holds each entry it works on whole; 64 MiB keeps both bounded.
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// The consumer group of every stream.
const GROUP: &str = "qtool";
/// The set of queue names in use on a server.
const QUEUES_KEY: &str = "qtool:queues";
/// How long to wait for a connection, and for a reply.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Lua helpers shared by the scripts. Times that decide whether a holder is alive are
/// the server's (`TIME`), never a client's clock.
const PRELUDE: &str = r#"
local function fields(e)
  local t = {}
  for i = 1, #e, 2 do t[e[i]] = e[i + 1] end
  return t
end
local function owner(stream, group, id)
  local ok, p = pcall(redis.call, 'XPENDING', stream, group, id, id, 1)
  if not ok or #p == 0 then return nil end
  return p[1][2]
end
local function size(meta, msg) return #meta + #msg end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Removes the index line of `fb` if it still names stream entry `id`.
local function drop_index(index, fb, id)
  local v = redis.call('HGET', index, fb)
  if v and string.match(v, '^%S+') == id then redis.call('HDEL', index, fb) end
end
local function since(holder)
  return tonumber(string.match(holder or '', '^(%d+) ')) or 0
end
"#;

/// Adds an entry unless its filebase is taken. KEYS: stream, index, held.
/// ARGV: filebase, meta, msg. Returns the new ID, or nil.
const ADD: &str = r#"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1
  or redis.call('HEXISTS', KEYS[3], 'm:' .. ARGV[1]) == 1 then
  return false
end
local id = redis.call('XADD', KEYS[1], '*', 'fb', ARGV[1], 'meta', ARGV[2], 'msg', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], id .. ' ' .. size(ARGV[2], ARGV[3]))
return id
"#;

/// Takes back an entry just added by a batch that failed part-way. KEYS: stream,
/// index. ARGV: id, filebase.
const UNADD: &str = r#"
redis.call('XDEL', KEYS[1], ARGV[1])
drop_index(KEYS[2], ARGV[2], ARGV[1])
return 1
"#;

/// Finishes a pending entry this consumer owns. KEYS: stream, index.
/// ARGV: group, consumer, id, filebase. Returns 1, or 0 when it is not ours.
const FINISH: &str = r#"
if owner(KEYS[1], ARGV[1], ARGV[3]) ~= ARGV[2] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
drop_index(KEYS[2], ARGV[4], ARGV[3])
return 1
"#;

/// Resets the idle time of a pending entry, only if this consumer still owns it (so a
/// live but slow holder never takes an entry back from its recoverer). KEYS: stream.
/// ARGV: group, consumer, id.
const TOUCH_PENDING: &str = r#"
if owner(KEYS[1], ARGV[1], ARGV[3]) ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"#;

/// Makes a pending entry this consumer owns ready again at the end of its stream,
/// optionally with new metadata. KEYS: stream, index. ARGV: group, consumer, id,
/// filebase, meta, replace ('1' to use ARGV[5]). Returns the new ID, or nil.
const REQUEUE: &str = r#"
if owner(KEYS[1], ARGV[1], ARGV[3]) ~= ARGV[2] then return false end
local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
if #e == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  return false
end
local f = fields(e[1][2])
local meta, msg, fb = f['meta'] or '', f['msg'] or '', f['fb'] or ARGV[4]
if ARGV[6] == '1' then meta = ARGV[5] end
local id = redis.call('XADD', KEYS[1], '*', 'fb', fb, 'meta', meta, 'msg', msg)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], fb, id .. ' ' .. size(meta, msg))
return id
"#;

/// Takes a ready entry by filebase into the held hash. KEYS: stream, index, held.
/// ARGV: group, filebase, consumer. Returns {meta, msg, holder} (holder: "<server ms>
/// <consumer>"), 'claimed' when a consumer has it, or nil when there is no such entry.
const TAKE: &str = r#"
local v = redis.call('HGET', KEYS[2], ARGV[2])
if not v then return false end
local id = string.match(v, '^%S+')
if not id then return false end
if owner(KEYS[1], ARGV[1], id) then return 'claimed' end
local e = redis.call('XRANGE', KEYS[1], id, id)
if #e == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  return false
end
local f = fields(e[1][2])
local meta, msg = f['meta'] or '', f['msg'] or ''
local holder = now_ms() .. ' ' .. ARGV[3]
redis.call('HSET', KEYS[3], 'm:' .. ARGV[2], meta, 'b:' .. ARGV[2], msg, 't:' .. ARGV[2], holder)
redis.call('XDEL', KEYS[1], id)
redis.call('HDEL', KEYS[2], ARGV[2])
return {meta, msg, holder}
"#;

/// Renews a held entry's holder, if `holder` still holds it. KEYS: held. ARGV:
/// filebase, holder, consumer. Returns the new holder, or nil.
const TOUCH: &str = r#"
if redis.call('HGET', KEYS[1], 't:' .. ARGV[1]) ~= ARGV[2] then return false end
local holder = now_ms() .. ' ' .. ARGV[3]
redis.call('HSET', KEYS[1], 't:' .. ARGV[1], holder)
return holder
"#;

/// Takes over a held entry whose holder has been silent for the claim timeout.
/// KEYS: held. ARGV: filebase, consumer, timeout in ms. Returns {meta, msg, holder},
/// or nil when it is gone or its holder is alive.
const STEAL: &str = r#"
local old = redis.call('HGET', KEYS[1], 't:' .. ARGV[1])
if not old or now_ms() - since(old) < tonumber(ARGV[3]) then return false end
local holder = now_ms() .. ' ' .. ARGV[2]
redis.call('HSET', KEYS[1], 't:' .. ARGV[1], holder)
return {redis.call('HGET', KEYS[1], 'm:' .. ARGV[1]) or '', redis.call('HGET', KEYS[1], 'b:' .. ARGV[1]) or '', holder}
"#;

/// Gives a held entry back to its stream, if `holder` still holds it. KEYS: stream,
/// index, held. ARGV: filebase, holder, meta, replace ('1'). Returns the new ID or nil.
const RELEASE: &str = r#"
if redis.call('HGET', KEYS[3], 't:' .. ARGV[1]) ~= ARGV[2] then return false end
local meta = redis.call('HGET', KEYS[3], 'm:' .. ARGV[1]) or ''
local msg = redis.call('HGET', KEYS[3], 'b:' .. ARGV[1]) or ''
if ARGV[4] == '1' then meta = ARGV[3] end
local id = redis.call('XADD', KEYS[1], '*', 'fb', ARGV[1], 'meta', meta, 'msg', msg)
redis.call('HSET', KEYS[2], ARGV[1], id .. ' ' .. size(meta, msg))
redis.call('HDEL', KEYS[3], 'm:' .. ARGV[1], 'b:' .. ARGV[1], 't:' .. ARGV[1])
return id
"#;

/// Drops a held entry, if `holder` still holds it. KEYS: held. ARGV: filebase, holder.
const DROP: &str = r#"
if redis.call('HGET', KEYS[1], 't:' .. ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'm:' .. ARGV[1], 'b:' .. ARGV[1], 't:' .. ARGV[1])
return 1
"#;

/// Moves a claimed entry to `bad` on the same server in one step, if this process
/// still holds it. KEYS: stream, index, held (of the queue), stream, index, held (of
/// `bad`). ARGV: 'pending' or 'held', group, consumer or holder, id, filebase, meta,
/// replace ('1' to use ARGV[6]), another filebase to use if ARGV[5] is taken in `bad`.
/// Returns the filebase it has in `bad`, or nil.
const TO_BAD: &str = r#"
local meta, msg
if ARGV[1] == 'pending' then
  if owner(KEYS[1], ARGV[2], ARGV[4]) ~= ARGV[3] then return false end
  local e = redis.call('XRANGE', KEYS[1], ARGV[4], ARGV[4])
  if #e == 0 then
    redis.call('XACK', KEYS[1], ARGV[2], ARGV[4])
    return false
  end
  local f = fields(e[1][2])
  meta, msg = f['meta'] or '', f['msg'] or ''
else
  if redis.call('HGET', KEYS[3], 't:' .. ARGV[5]) ~= ARGV[3] then return false end
  meta = redis.call('HGET', KEYS[3], 'm:' .. ARGV[5]) or ''
  msg = redis.call('HGET', KEYS[3], 'b:' .. ARGV[5]) or ''
end
if ARGV[7] == '1' then meta = ARGV[6] end
local fb = ARGV[5]
if redis.call('HEXISTS', KEYS[5], fb) == 1 or redis.call('HEXISTS', KEYS[6], 'm:' .. fb) == 1 then
  fb = ARGV[8]
end
local id = redis.call('XADD', KEYS[4], '*', 'fb', fb, 'meta', meta, 'msg', msg)
redis.call('HSET', KEYS[5], fb, id .. ' ' .. size(meta, msg))
if ARGV[1] == 'pending' then
  redis.call('XACK', KEYS[1], ARGV[2], ARGV[4])
  redis.call('XDEL', KEYS[1], ARGV[4])
  drop_index(KEYS[2], ARGV[5], ARGV[4])
else
  redis.call('HDEL', KEYS[3], 'm:' .. ARGV[5], 'b:' .. ARGV[5], 't:' .. ARGV[5])
end
return fb
"#;

/// Forgets a consumer (a dead runner) that holds nothing and has been idle for long,
/// in one step, so one that just took entries is never forgotten with them. KEYS:
/// stream. ARGV: group, consumer, minimum idle ms.
const FORGET: &str = r#"
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = fields(c)
  if f['name'] == ARGV[2] then
    if tonumber(f['idle']) >= tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
"#;

/// One page of a stream for `list`, an entry at a time so the server never holds more
/// than one entry beyond the page: KEYS: stream. ARGV: start, most entries, head
/// bytes, most bytes. Returns {id, fb, meta, head of msg, size} per entry.
const HEADS: &str = r#"
local out, total, start = {}, 0, ARGV[1]
while #out < tonumber(ARGV[2]) and total < tonumber(ARGV[4]) do
  local r = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1)
  if #r == 0 then break end
  local f = fields(r[1][2])
  local meta, msg = f['meta'] or '', f['msg'] or ''
  total = total + size(meta, msg)
  table.insert(out, {r[1][1], f['fb'] or '', meta, string.sub(msg, 1, tonumber(ARGV[3])), size(meta, msg)})
  start = '(' .. r[1][1]
end
return out
"#;

/// A Redis server, as this process talks to it: one connection, made when first needed
/// and made again after a failure.
pub struct Server {
    /// The URL without its password, for messages.
    shown: String,
    client: std::result::Result<Client, String>,
    conn: Mutex<Option<Box<dyn redis::ConnectionLike + Send>>>,
    /// This process's consumer name: `<host>:<pid>:<random>`.
    consumer: String,
    /// Pending entries this process holds in memory now (`<stream>#<id>`): its own
    /// recovery leaves them alone even when they have been idle for long (a server
    /// that stalled, a long pass).
    live: Arc<Mutex<HashSet<String>>>,
}

/// Marks a pending entry as held by this process while it lives.
#[derive(Debug)]
struct Live {
    set: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Live {
    fn new(server: &Server, stream: &str, id: &str) -> Live {
        let key = format!("{stream}#{id}");
        server
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        Live {
            set: server.live.clone(),
            key,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// One server, or a Redis Cluster (`redis+cluster://HOST:PORT,HOST:PORT`).
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// The connection, as every command takes it.
type Conn = dyn redis::ConnectionLike + Send;

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Server({})", self.shown)
    }
}

/// True for a queue location that names a Redis server or cluster.
pub fn is_redis_url(location: &str) -> bool {
    location.starts_with("redis://") || location.starts_with(CLUSTER_SCHEME)
}

const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Checks a `redis://HOST:PORT/DB` or `redis+cluster://HOST:PORT,...` URL (for the
/// configuration).
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    open_client(url).map(|_| ()).map_err(|e| {
        format!("not a Redis URL ({e}); expected redis://HOST:PORT/DB or redis+cluster://HOST:PORT,HOST:PORT")
    })
}

/// The client for `url`: a cluster's nodes are `redis://[user:password@]HOST:PORT`
/// each, sharing the credentials given once.
fn open_client(url: &str) -> std::result::Result<Client, String> {
    let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
        return redis::Client::open(url)
            .map(Client::Single)
            .map_err(|e| e.to_string());
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.trim_end_matches('/');
    if hosts.is_empty() || hosts.contains('/') {
        return Err("a cluster URL names its nodes only (database 0 is the only one)".into());
    }
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|h| format!("redis://{auth}{h}"))
        .collect();
    redis::cluster::ClusterClient::builder(nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(REPLY_TIMEOUT)
        .build()
        .map(Client::Cluster)
        .map_err(|e| e.to_string())
}

impl Server {
    pub fn new(url: &str) -> Server {
        Server {
            shown: redact(url),
            client: open_client(url),
            conn: Mutex::new(None),
            live: Default::default(),
            consumer: format!("{}:{}:{:08x}", hostname(), std::process::id(), random_u32()),
        }
    }

    /// Drops the connection: the next call connects again (and loads the scripts).
    fn forget_connection(&self) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// True for a Redis Cluster: keys of different slots never share a script, a
    /// pipeline or a command.
    fn clustered(&self) -> bool {
        matches!(self.client, Ok(Client::Cluster(_)))
    }

    /// Runs `f` on the connection, connecting first if needed. A failure to reach the
    /// server is a temporary failure (75); the connection is dropped so the next call
    /// connects again.
    fn run<T>(&self, f: impl FnOnce(&mut Conn) -> redis::RedisResult<T>) -> Result<T> {
        let client = self.client.as_ref().map_err(|e| {
            Error::new(
                exit::CONFIG,
                format!("{}: {e}", self.shown),
                "give queue_dir (or the runner's path) as redis://HOST:PORT/DB",
            )
        })?;
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let _held = SignalsHeld::new();
        if slot.is_none() {
            let conn: Box<Conn> = match client {
                Client::Single(c) => Box::new(
                    c.get_connection_with_timeout(CONNECT_TIMEOUT)
                        .and_then(|c| {
                            c.set_read_timeout(Some(REPLY_TIMEOUT))?;
                            c.set_write_timeout(Some(REPLY_TIMEOUT))?;
                            Ok(c)
                        })
                        .map_err(|e| self.error(e))?,
                ),
                Client::Cluster(c) => Box::new(c.get_connection().map_err(|e| self.error(e))?),
            };
            let mut conn = conn;
            for (_, text, _) in script_table() {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(text.as_str())
                    .query::<RV>(conn.as_mut())
                    .map_err(|e| self.error(e))?;
            }
            *slot = Some(conn);
        }
        let conn = slot.as_mut().expect("connected above");
        match f(conn.as_mut()) {
            Ok(v) => Ok(v),
            Err(e) => {
                // A server that lost its scripts (SCRIPT FLUSH) gets them again with
                // the next connection.
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.code() == Some("NOSCRIPT")
                {
                    *slot = None;
                }
                Err(self.error(e))
            }
        }
    }

    fn error(&self, e: redis::RedisError) -> Error {
        let temporary = e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || matches!(
                e.code(),
                Some(
                    "LOADING"
                        | "BUSY"
                        | "OOM"
                        | "MASTERDOWN"
                        | "READONLY"
                        | "TRYAGAIN"
                        | "CLUSTERDOWN"
                        | "MISCONF"
                        | "NOREPLICAS"
                        | "NOGROUP"
                        | "NOSCRIPT"
                )
            );
        if temporary {
            Error::new(
                exit::TEMPFAIL,
                format!("cannot use Redis at {}: {e}", self.shown),
                "check that redis-server is running and reachable; nothing acknowledged was lost, try again",
            )
        } else {
            Error::new(
                exit::IOERR,
                format!("Redis at {} refused a command: {e}", self.shown),
                "check the server's logs and that no other program uses qtool's keys",
            )
        }
    }
}

/// The URL without a password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// A random number, from the standard library's per-process hash seed.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// Blocks every blockable signal in this thread while it lives. A signal that arrives
/// during a Redis call then waits for the call to end: a socket read with a timeout
/// is not restarted after a signal handler (signal(7)), and an interrupted call would
/// leave its command's outcome unknown.
struct SignalsHeld(libc::sigset_t);

impl SignalsHeld {
    fn new() -> SignalsHeld {
        // SAFETY: sigfillset/pthread_sigmask on sets owned here.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            SignalsHeld(old)
        }
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// One queue on a Redis server.
#[derive(Clone)]
pub struct RedisQueue {
    name: QueueName,
    server: Arc<Server>,
    /// Streams for a queue used for the first time.
    instances: u32,
    claim_timeout: Duration,
    /// The queue's number of streams, once read.
    streams: Arc<OnceLock<u32>>,
    /// Set once the consumer groups are known to exist (cleared if one goes missing).
    groups: Arc<std::sync::atomic::AtomicBool>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisQueue({} on {})", self.name, self.server.shown)
    }
}

/// Stream IDs, compared as numbers.
fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn bytes(v: &RV) -> Option<&[u8]> {
    match v {
        RV::BulkString(b) => Some(b),
        RV::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &RV) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(b).into_owned())
}

fn int(v: &RV) -> Option<i64> {
    match v {
        RV::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

fn array(v: &RV) -> &[RV] {
    match v {
        RV::Array(a) | RV::Set(a) => a,
        _ => &[],
    }
}

/// A stream entry's fields as qtool writes them: its filebase (`None` when missing or
/// not one: another program's entry), its metadata as YAML and its message.
struct Fields {
    fb: Option<Filebase>,
    meta: Vec<u8>,
    msg: Vec<u8>,
}

/// The fields of a stream entry (`[f1, v1, f2, v2, ...]`).
fn entry_fields(v: &RV) -> Fields {
    let mut f: HashMap<String, Vec<u8>> = array(v)
        .chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((text(k)?, bytes(v)?.to_vec())),
            _ => None,
        })
        .collect();
    Fields {
        fb: f
            .get("fb")
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok()),
        meta: f.remove("meta").unwrap_or_default(),
        msg: f.remove("msg").unwrap_or_default(),
    }
}

/// The IDs in an `XPENDING key group - + count` reply.
fn pending_ids(reply: &RV) -> HashSet<String> {
    array(reply)
        .iter()
        .filter_map(|p| array(p).first().and_then(text))
        .collect()
}

/// Every script, loaded into the server (`SCRIPT LOAD`) whenever a connection is made
/// and called by its SHA-1 (`EVALSHA`), so a batch does not send and hash the text of
/// a script once per entry.
const SCRIPTS: [&str; 14] = [
    ADD,
    UNADD,
    FINISH,
    TOUCH_PENDING,
    REQUEUE,
    TAKE,
    TOUCH,
    STEAL,
    RELEASE,
    DROP,
    TO_BAD,
    FORGET,
    HEADS,
    "",
];

/// Each script, its full text (the prelude and the script) and its SHA-1.
fn script_table() -> &'static [(&'static str, String, String)] {
    static TABLE: OnceLock<Vec<(&'static str, String, String)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        SCRIPTS
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                let text = format!("{PRELUDE}{s}");
                let sha: String = sha1::Sha1::digest(text.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                (*s, text, sha)
            })
            .collect()
    })
}

fn eval(script: &str, keys: &[&str], args: &[&[u8]]) -> redis::Cmd {
    let mut cmd = match script_table().iter().find(|(s, _, _)| *s == script) {
        Some((_, _, sha)) => {
            let mut c = redis::cmd("EVALSHA");
            c.arg(sha.as_str());
            c
        }
        None => {
            let mut c = redis::cmd("EVAL");
            c.arg(format!("{PRELUDE}{script}"));
            c
        }
    };
    cmd.arg(keys.len()).arg(keys);
    for a in args {
        cmd.arg(*a);
    }
    cmd
}

/// Runs a pipeline (of commands on one cluster slot) and reads its replies as `T`. The
/// client's `Pipeline::query` refuses a cluster connection; every pipeline qtool sends
/// stays within one slot, which the cluster connection routes as one request.
fn pipe_query<T: redis::FromRedisValue>(
    c: &mut Conn,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    let replies = c.req_packed_commands(&pipe.get_packed_pipeline(), 0, pipe.len())?;
    for r in &replies {
        if let RV::ServerError(e) = r {
            return Err(e.clone().into());
        }
    }
    redis::from_owned_redis_value(RV::Array(replies))
}

/// Runs a pipeline and returns each command's own outcome (the client's `query` stops
/// at the first refused command, hiding what the others did).
fn pipeline_each(
    c: &mut Conn,
    pipe: &redis::Pipeline,
    n: usize,
) -> redis::RedisResult<Vec<std::result::Result<RV, String>>> {
    let replies = c.req_packed_commands(&pipe.get_packed_pipeline(), 0, n)?;
    Ok(replies
        .into_iter()
        .map(|v| match v {
            RV::ServerError(e) => Err(format!("{e:?}")),
            other => Ok(other),
        })
        .collect())
}

impl RedisQueue {
    pub fn new(
        name: QueueName,
        server: Arc<Server>,
        instances: u32,
        claim_timeout: Duration,
    ) -> Self {
        RedisQueue {
            name,
            server,
            instances: instances.max(1),
            claim_timeout,
            streams: Default::default(),
            groups: Default::default(),
        }
    }

    pub fn name(&self) -> &QueueName {
        &self.name
    }

    /// Runs `f` on the server; a stream or group that went missing (deleted by hand)
    /// makes the groups be made again on the next call.
    fn run<T>(&self, f: impl FnOnce(&mut Conn) -> redis::RedisResult<T>) -> Result<T> {
        let r = self.server.run(f);
        if let Err(e) = &r {
            if e.message.contains("NOGROUP") {
                self.groups
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        r
    }

    /// Runs commands, each on the keys of one stream, as one pipeline; on a cluster,
    /// one pipeline per stream (a pipeline goes to one node). Each command's own
    /// outcome, in order.
    #[allow(clippy::type_complexity)]
    fn pipelined(
        &self,
        cmds: Vec<(u32, redis::Cmd)>,
    ) -> Result<Vec<std::result::Result<RV, String>>> {
        let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
        for (k, (i, _)) in cmds.iter().enumerate() {
            let stream = if self.server.clustered() { *i } else { 0 };
            match groups.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, ks)) => ks.push(k),
                None => groups.push((stream, vec![k])),
            }
        }
        let mut out: Vec<Option<std::result::Result<RV, String>>> = vec![None; cmds.len()];
        for (_, ks) in groups {
            let mut pipe = redis::pipe();
            for &k in &ks {
                pipe.add_command(cmds[k].1.clone());
            }
            let replies = self.run(|c| pipeline_each(c, &pipe, ks.len()))?;
            if replies
                .iter()
                .any(|r| r.as_ref().is_err_and(|e| e.contains("NOSCRIPT")))
            {
                self.server.forget_connection();
            }
            for (k, r) in ks.into_iter().zip(replies) {
                out[k] = Some(r);
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("no reply".into())))
            .collect())
    }

    pub fn location(&self) -> String {
        format!("{} queue {}", self.server.shown, self.name)
    }

    pub fn claim_timeout(&self) -> Duration {
        self.claim_timeout
    }

    fn is_bad(&self) -> bool {
        self.name == QueueName::bad()
    }

    fn stream(&self, i: u32) -> String {
        format!("qtool:{{{}.{}}}", self.name, i)
    }

    fn index(&self, i: u32) -> String {
        format!("qtool:{{{}.{}}}:index", self.name, i)
    }

    fn held(&self, i: u32) -> String {
        format!("qtool:{{{}.{}}}:held", self.name, i)
    }

    /// The number of streams of this queue, recorded the first time it is written to
    /// (making the queue exist).
    pub fn ensure(&self) -> Result<u32> {
        Ok(self.layout(true)?.expect("a queue made exists"))
    }

    /// The number of streams of this queue, `None` when it does not exist: reading a
    /// queue never makes it (as reading a missing directory does not).
    fn layout(&self, create: bool) -> Result<Option<u32>> {
        if let Some(n) = self.streams.get() {
            return Ok(Some(*n));
        }
        let key = format!("qtool:{{{}}}:streams", self.name);
        let n: Option<i64> = if create {
            // Two keys of different cluster slots: two round trips.
            self.run(|c| {
                redis::cmd("SADD")
                    .arg(QUEUES_KEY)
                    .arg(self.name.as_str())
                    .query::<RV>(c)
            })?;
            let (_, n): (RV, Option<i64>) = self.run(|c| {
                pipe_query(
                    c,
                    redis::pipe()
                        .cmd("SET")
                        .arg(&key)
                        .arg(self.instances)
                        .arg("NX")
                        .cmd("GET")
                        .arg(&key),
                )
            })?;
            n
        } else {
            let n: Option<i64> = self.run(|c| redis::cmd("GET").arg(&key).query(c))?;
            match n {
                Some(n) => Some(n),
                None => return Ok(None),
            }
        };
        let n = n
            .filter(|n| *n > 0 && (*n as u64).is_power_of_two() && *n <= Slice::MAX_COUNT as i64)
            .ok_or_else(|| {
                Error::data(
                    format!("{}: {key} is not a power of two", self.server.shown),
                    "it records the number of streams of the queue; restore it by hand",
                )
            })? as u32;
        Ok(Some(*self.streams.get_or_init(|| n)))
    }

    /// The number of streams of an existing queue, with the consumer group of each
    /// made (once per process); `None` when the queue does not exist.
    fn groups(&self) -> Result<Option<u32>> {
        let Some(n) = self.layout(false)? else {
            return Ok(None);
        };
        if self.groups.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(Some(n));
        }
        for i in 0..n {
            self.run(|c| {
                let created: redis::RedisResult<RV> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(self.stream(i))
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query(c);
                match created {
                    Err(e) if e.code() == Some("BUSYGROUP") => Ok(RV::Nil),
                    other => other,
                }
            })?;
        }
        self.groups
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(n))
    }

    /// The stream of filebase `fb` among `n`.
    fn stream_of(&self, fb: &Filebase, n: u32) -> u32 {
        (0..n)
            .find(|&i| fb.in_slice(&Slice { index: i, count: n }))
            .unwrap_or(0)
    }

    /// The streams runner slice `slice` reads.
    fn streams_for(&self, slice: Slice, n: u32) -> std::ops::Range<u32> {
        if slice.count >= n {
            let i = (slice.index as u64 * n as u64 / slice.count as u64) as u32;
            i..i + 1
        } else {
            let per = n / slice.count;
            slice.index * per..(slice.index + 1) * per
        }
    }

    pub fn batch(&self) -> RedisBatch {
        RedisBatch::default()
    }

    /// Adds entries in one pipeline; `None` for each whose filebase was taken.
    /// Adds entries in one pipeline: for each, its new ID, `None` when its filebase
    /// was taken, or why Redis refused it (out of memory, say).
    #[allow(clippy::type_complexity)]
    fn add_all(
        &self,
        items: &[(u32, &Filebase, &[u8], &[u8])],
    ) -> Result<Vec<std::result::Result<Option<String>, String>>> {
        let cmds = items
            .iter()
            .map(|(i, fb, meta, msg)| {
                (
                    *i,
                    eval(
                        ADD,
                        &[&self.stream(*i), &self.index(*i), &self.held(*i)],
                        &[fb.as_str().as_bytes(), meta, msg],
                    ),
                )
            })
            .collect();
        Ok(self
            .pipelined(cmds)?
            .into_iter()
            .map(|r| r.map(|v| text(&v)))
            .collect())
    }

    /// Takes back entries a batch added after one that failed, so that what a batch
    /// reports committed is exactly what it added.
    fn unadd(&self, added: &[(u32, String, &Filebase)]) -> Result<()> {
        let cmds = added
            .iter()
            .map(|(i, id, fb)| {
                (
                    *i,
                    eval(
                        UNADD,
                        &[&self.stream(*i), &self.index(*i)],
                        &[id.as_bytes(), fb.as_str().as_bytes()],
                    ),
                )
            })
            .collect();
        match self.pipelined(cmds)?.into_iter().find_map(|r| r.err()) {
            Some(why) => Err(self.refused(&why)),
            None => Ok(()),
        }
    }

    /// Adds one entry under `fb`, or under a fresh name if `fb` is taken.
    fn add_renaming(&self, fb: &Filebase, meta: &[u8], msg: &[u8]) -> Result<Filebase> {
        let n = self.ensure()?;
        let mut fb = fb.clone();
        for _ in 0..100 {
            let i = self.stream_of(&fb, n);
            match self.add_all(&[(i, &fb, meta, msg)])?.remove(0) {
                Ok(Some(_)) => return Ok(fb),
                Ok(None) => {}
                Err(why) => return Err(self.refused(&why)),
            }
            let mut hasher = sha1::Sha1::default();
            hasher.update(fb.as_str().as_bytes());
            fb = Filebase::from_parts(hasher, "--nolist--", &Stamp::now());
        }
        Err(Error::new(
            exit::TEMPFAIL,
            format!(
                "cannot add entry to {}: every name tried is taken",
                self.location()
            ),
            "try again",
        ))
    }

    fn refused(&self, why: &str) -> Error {
        Error::new(
            exit::TEMPFAIL,
            format!(
                "Redis at {} refused an entry for {}: {why}",
                self.server.shown, self.name
            ),
            "check Redis's memory (maxmemory) and logs; what was not printed was not stored",
        )
    }

    /// Stores a preserved entry in this (`bad`) queue.
    pub fn store_preserved(&self, fb: &Filebase, meta: &[u8], msg: &[u8]) -> Result<()> {
        self.add_renaming(fb, meta, msg).map(|_| ())
    }

    /// Every entry: filebase, state, size, and (for `scan`) stream entries without a
    /// valid filebase, as strays.
    pub fn scan(&self, state: Option<State>, slice: Slice) -> Result<Scan> {
        let Some(n) = self.groups()? else {
            return Ok(Scan::default());
        };
        let mut rows: Vec<(Filebase, State, u64)> = Vec::new();
        let mut strays = Vec::new();
        for i in 0..n {
            let (index, pending, held): (RV, RV, RV) = self.run(|c| {
                pipe_query(
                    c,
                    redis::pipe()
                        .cmd("HGETALL")
                        .arg(self.index(i))
                        .cmd("XPENDING")
                        .arg(self.stream(i))
                        .arg(GROUP)
                        .arg("-")
                        .arg("+")
                        .arg(i64::MAX)
                        .cmd("HKEYS")
                        .arg(self.held(i)),
                )
            })?;
            let pending = pending_ids(&pending);
            for kv in array(&index).chunks(2) {
                let [k, v] = kv else { continue };
                let (Some(name), Some(val)) = (text(k), text(v)) else {
                    continue;
                };
                let Ok(fb) = name.parse::<Filebase>() else {
                    strays.push(format!("{} index entry {name}", self.stream(i)).into());
                    continue;
                };
                let mut parts = val.split(' ');
                let id = parts.next().unwrap_or_default();
                let size = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let st = if self.is_bad() {
                    State::Preserved
                } else if pending.contains(id) {
                    State::Claimed
                } else {
                    State::Ready
                };
                rows.push((fb, st, size));
            }
            // Held entries: their sizes without their bodies.
            let held: Vec<Filebase> = array(&held)
                .iter()
                .filter_map(|k| text(k)?.strip_prefix("m:")?.parse().ok())
                .collect();
            if !held.is_empty() {
                let mut pipe = redis::pipe();
                for fb in &held {
                    pipe.cmd("HSTRLEN").arg(self.held(i)).arg(format!("m:{fb}"));
                    pipe.cmd("HSTRLEN").arg(self.held(i)).arg(format!("b:{fb}"));
                }
                let lens: Vec<u64> = self.run(|c| pipe_query(c, &pipe))?;
                for (fb, len) in held.into_iter().zip(lens.chunks(2)) {
                    rows.push((fb, State::Claimed, len.iter().sum()));
                }
            }
        }
        rows.retain(|(fb, st, _)| state.is_none_or(|want| want == *st) && fb.in_slice(&slice));
        rows.sort_by(|a, b| a.0.fifo_cmp(&b.0));
        let mut scan = Scan {
            strays,
            ..Scan::default()
        };
        for (fb, st, size) in rows {
            scan.entries.push((fb, st));
            scan.sizes.push(size);
        }
        Ok(scan)
    }

    /// Where entry `fb` is: its stream ID (if in the stream) and its state.
    fn find(&self, fb: &Filebase) -> Result<Option<(Option<String>, State)>> {
        let Some(n) = self.groups()? else {
            return Ok(None);
        };
        let i = self.stream_of(fb, n);
        let (idx, held): (Option<String>, i64) = self.run(|c| {
            pipe_query(
                c,
                redis::pipe()
                    .cmd("HGET")
                    .arg(self.index(i))
                    .arg(fb.as_str())
                    .cmd("HEXISTS")
                    .arg(self.held(i))
                    .arg(format!("m:{fb}")),
            )
        })?;
        if let Some(v) = idx {
            let id = v.split(' ').next().unwrap_or_default().to_string();
            if self.is_bad() {
                return Ok(Some((Some(id), State::Preserved)));
            }
            let p: RV = self.run(|c| {
                redis::cmd("XPENDING")
                    .arg(self.stream(i))
                    .arg(GROUP)
                    .arg(&id)
                    .arg(&id)
                    .arg(1)
                    .query(c)
            })?;
            let st = if array(&p).is_empty() {
                State::Ready
            } else {
                State::Claimed
            };
            return Ok(Some((Some(id), st)));
        }
        Ok((held == 1).then_some((None, State::Claimed)))
    }

    pub fn locate(&self, fb: &Filebase) -> Result<Option<State>> {
        Ok(self.find(fb)?.map(|(_, st)| st))
    }

    /// Reads entry `fb` without claiming it.
    pub fn read(&self, fb: &Filebase) -> Result<Option<Entry>> {
        let Some(n) = self.layout(false)? else {
            return Ok(None);
        };
        let i = self.stream_of(fb, n);
        let what = format!("{} entry {fb}", self.location());
        match self.find(fb)? {
            Some((Some(id), _)) => {
                let e: RV = self.run(|c| {
                    redis::cmd("XRANGE")
                        .arg(self.stream(i))
                        .arg(&id)
                        .arg(&id)
                        .query(c)
                })?;
                let Some(first) = array(&e).first() else {
                    return Ok(None);
                };
                let f = entry_fields(array(first).get(1).unwrap_or(&RV::Nil));
                Entry::from_memory(&f.meta, Arc::new(f.msg), &what).map(Some)
            }
            Some((None, _)) => {
                let (meta, msg): (Option<Vec<u8>>, Option<Vec<u8>>) = self.run(|c| {
                    redis::cmd("HMGET")
                        .arg(self.held(i))
                        .arg(format!("m:{fb}"))
                        .arg(format!("b:{fb}"))
                        .query(c)
                })?;
                match (meta, msg) {
                    (Some(meta), Some(msg)) => {
                        Entry::from_memory(&meta, Arc::new(msg), &what).map(Some)
                    }
                    _ => Ok(None),
                }
            }
            None => Ok(None),
        }
    }

    /// Claims a ready entry by name (for `dequeue` and the repairs): takes it out of
    /// the stream into the held hash.
    pub fn claim(&self, fb: &Filebase) -> Result<Claimed> {
        let Some(n) = self.groups()? else {
            return Ok(Claimed::Lost);
        };
        let i = self.stream_of(fb, n);
        let r: RV = self.run(|c| {
            eval(
                TAKE,
                &[&self.stream(i), &self.index(i), &self.held(i)],
                &[
                    GROUP.as_bytes(),
                    fb.as_str().as_bytes(),
                    self.server.consumer.as_bytes(),
                ],
            )
            .query(c)
        })?;
        let parts = array(&r);
        if parts.len() != 3 {
            return Ok(Claimed::Lost);
        }
        Ok(Claimed::Got(
            self.redis_claim(
                fb.clone(),
                i,
                Kind::Held {
                    holder: text(&parts[2]).unwrap_or_default().into(),
                },
                bytes(&parts[0]).unwrap_or_default().to_vec(),
                bytes(&parts[1]).unwrap_or_default().to_vec(),
                None,
            )
            .into(),
        ))
    }

    /// A claim of entry `fb` of stream `i`, held as `kind`, with its content.
    fn redis_claim(
        &self,
        fb: Filebase,
        i: u32,
        kind: Kind,
        meta: Vec<u8>,
        msg: Vec<u8>,
        live: Option<Live>,
    ) -> RedisClaim {
        let location = match &kind {
            Kind::Pending { id } => format!("{} entry {id}", self.stream(i)),
            Kind::Held { .. } => format!("{} entry {fb}", self.held(i)),
        };
        RedisClaim {
            fb,
            stream: i,
            kind,
            meta,
            msg: Arc::new(msg),
            location: format!("{} {location}", self.server.shown),
            touched: Cell::new(Instant::now()),
            _live: live,
        }
    }

    /// A runner's pass over the streams of `slice`.
    pub fn pass(&self, slice: Slice, prefetch: usize) -> Result<RedisPass> {
        let n = self.groups()?.unwrap_or(0);
        let streams: Vec<u32> = if self.is_bad() || n == 0 {
            Vec::new()
        } else {
            self.streams_for(slice, n).collect()
        };
        if slice.count > n && !self.is_bad() {
            // A slice finer than the streams: it owns only part of a stream, so it
            // claims its own entries by name instead of reading the stream's group.
            let scan = self.scan(Some(State::Ready), slice)?;
            return Ok(RedisPass {
                len: scan.entries.len(),
                by_name: Some(scan.entries.into_iter().map(|(fb, _)| fb).collect()),
                streams: Vec::new(),
                bounds: Vec::new(),
                done: Vec::new(),
                buffer: VecDeque::new(),
                prefetch: 1,
                asked: 1,
            });
        }
        let mut pass = RedisPass {
            by_name: None,
            streams: streams.clone(),
            bounds: Vec::new(),
            done: vec![false; streams.len()],
            buffer: VecDeque::new(),
            // Start small and grow while the entries are small: a queue of large
            // messages never has many of them claimed at once.
            prefetch: prefetch.clamp(1, 4),
            asked: prefetch.max(1),
            len: 0,
        };
        for i in streams {
            let (len, summary, last): (i64, RV, RV) = self.run(|c| {
                pipe_query(
                    c,
                    redis::pipe()
                        .cmd("XLEN")
                        .arg(self.stream(i))
                        .cmd("XPENDING")
                        .arg(self.stream(i))
                        .arg(GROUP)
                        .cmd("XREVRANGE")
                        .arg(self.stream(i))
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(1),
                )
            })?;
            let pending = array(&summary).first().and_then(int).unwrap_or(0);
            pass.len += (len - pending).max(0) as usize;
            let last = array(&last)
                .first()
                .and_then(|e| array(e).first())
                .and_then(text)
                .map(|id| parse_id(&id));
            pass.bounds.push(last);
        }
        Ok(pass)
    }

    /// Resets the idle time of a pending entry this process works on, at most every
    /// quarter of the claim timeout.
    pub fn keep_alive(&self, c: &RedisClaim) {
        if c.touched.get().elapsed() < self.claim_timeout / 4 {
            return;
        }
        c.touched.set(Instant::now());
        let i = c.stream;
        match &c.kind {
            Kind::Pending { id } => {
                let _ = self.run(|conn| {
                    eval(
                        TOUCH_PENDING,
                        &[&self.stream(i)],
                        &[
                            GROUP.as_bytes(),
                            self.server.consumer.as_bytes(),
                            id.as_bytes(),
                        ],
                    )
                    .query::<RV>(conn)
                });
            }
            Kind::Held { holder } => {
                let renewed: Result<Option<String>> = self.run(|conn| {
                    eval(
                        TOUCH,
                        &[&self.held(i)],
                        &[
                            c.fb.as_str().as_bytes(),
                            holder.borrow().as_bytes(),
                            self.server.consumer.as_bytes(),
                        ],
                    )
                    .query(conn)
                });
                if let Ok(Some(renewed)) = renewed {
                    *holder.borrow_mut() = renewed;
                }
            }
        }
    }

    fn lost(&self, fb: &Filebase) -> Error {
        Error::new(
            exit::TEMPFAIL,
            format!(
                "entry {fb} of {} was taken over while this process held it (idle longer than claim_timeout {}s); it may be handled twice",
                self.location(),
                self.claim_timeout.as_secs()
            ),
            "raise claim_timeout above the longest pause of a runner",
        )
    }

    pub fn finish(&self, c: RedisClaim) -> Result<()> {
        self.finish_all(vec![c])
    }

    /// Finishes claimed entries in one pipeline. Each is removed only if this process
    /// still holds it; one that was taken over meanwhile is reported (75) after the
    /// others are done.
    pub fn finish_all(&self, claims: Vec<RedisClaim>) -> Result<()> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut cmds = Vec::with_capacity(claims.len());
        for c in &claims {
            let i = c.stream;
            cmds.push((
                i,
                match &c.kind {
                    Kind::Pending { id } => eval(
                        FINISH,
                        &[&self.stream(i), &self.index(i)],
                        &[
                            GROUP.as_bytes(),
                            self.server.consumer.as_bytes(),
                            id.as_bytes(),
                            c.fb.as_str().as_bytes(),
                        ],
                    ),
                    Kind::Held { holder } => eval(
                        DROP,
                        &[&self.held(i)],
                        &[c.fb.as_str().as_bytes(), holder.borrow().as_bytes()],
                    ),
                },
            ));
        }
        let done = self.pipelined(cmds)?;
        match claims
            .iter()
            .zip(done)
            .find(|(_, d)| !matches!(d, Ok(RV::Int(1))))
        {
            Some((_, Err(why))) => Err(self.refused(&why)),
            Some((c, _)) => Err(self.lost(&c.fb)),
            None => Ok(()),
        }
    }

    /// Makes a claimed entry ready again (at the end of its stream), with `meta` as its
    /// metadata if given. `false` when another process had taken it over.
    fn requeue(&self, c: &RedisClaim, meta: Option<&[u8]>) -> Result<bool> {
        let i = c.stream;
        let (replace, meta): (&[u8], &[u8]) = match meta {
            Some(m) => (b"1", m),
            None => (b"0", b""),
        };
        let r: Option<String> = match &c.kind {
            Kind::Pending { id } => self.run(|conn| {
                eval(
                    REQUEUE,
                    &[&self.stream(i), &self.index(i)],
                    &[
                        GROUP.as_bytes(),
                        self.server.consumer.as_bytes(),
                        id.as_bytes(),
                        c.fb.as_str().as_bytes(),
                        meta,
                        replace,
                    ],
                )
                .query(conn)
            })?,
            Kind::Held { holder } => self.run(|conn| {
                eval(
                    RELEASE,
                    &[&self.stream(i), &self.index(i), &self.held(i)],
                    &[
                        c.fb.as_str().as_bytes(),
                        holder.borrow().as_bytes(),
                        meta,
                        replace,
                    ],
                )
                .query(conn)
            })?,
        };
        Ok(r.is_some())
    }

    pub fn put_back(&self, c: RedisClaim) -> Result<()> {
        // Taken over meanwhile: it is ready or being handled elsewhere, as it should be.
        self.requeue(&c, None).map(|_| ())
    }

    /// Moves a claimed entry to `bad` (with `meta` as its metadata if given). On the
    /// same server it is one script, so a crash leaves it in one place; elsewhere it
    /// is copied, then finished here.
    pub fn to_bad(&self, c: RedisClaim, meta: Option<&[u8]>, bad: &Switchboard) -> Result<()> {
        let (replace, new_meta): (&[u8], &[u8]) = match meta {
            Some(m) => (b"1", m),
            None => (b"0", b""),
        };
        // One script when both queues are on this server (a cluster's slots differ, so
        // there: copy, then finish).
        let Some(b) = bad
            .as_redis()
            .filter(|b| Arc::ptr_eq(&b.server, &self.server) && !self.server.clustered())
        else {
            let (m, msg) = c.raw();
            bad.store_preserved(&c.fb, meta.unwrap_or(m), msg)?;
            return self.finish(c);
        };
        let bn = b.ensure()?;
        let bi = b.stream_of(&c.fb, bn);
        // Another name in the same stream of `bad`, should this one be taken there.
        let mut other = c.fb.clone();
        loop {
            let mut hasher = sha1::Sha1::default();
            hasher.update(other.as_str().as_bytes());
            other = Filebase::from_parts(hasher, "--nolist--", &Stamp::now());
            if b.stream_of(&other, bn) == bi {
                break;
            }
        }
        let i = c.stream;
        let (kind, who, id): (&[u8], String, String) = match &c.kind {
            Kind::Pending { id } => (b"pending", self.server.consumer.clone(), id.clone()),
            Kind::Held { holder } => (b"held", holder.borrow().clone(), String::new()),
        };
        let moved: Option<String> = self.run(|conn| {
            eval(
                TO_BAD,
                &[
                    &self.stream(i),
                    &self.index(i),
                    &self.held(i),
                    &b.stream(bi),
                    &b.index(bi),
                    &b.held(bi),
                ],
                &[
                    kind,
                    GROUP.as_bytes(),
                    who.as_bytes(),
                    id.as_bytes(),
                    c.fb.as_str().as_bytes(),
                    new_meta,
                    replace,
                    other.as_str().as_bytes(),
                ],
            )
            .query(conn)
        })?;
        match moved {
            Some(_) => Ok(()),
            None => Err(self.lost(&c.fb)),
        }
    }

    /// Recovers entries of `slice` whose holders died: pending ones idle longer than
    /// the claim timeout (`XAUTOCLAIM`), and held ones older than it (also those of
    /// `bad`, given back unchanged).
    pub fn recover(&self, slice: Slice, bad: &Switchboard) -> Result<Recovery> {
        let mut report = Recovery::default();
        if let Some(b) = bad.as_redis() {
            if let Some(bn) = b.groups()? {
                for i in 0..bn {
                    b.recover_held(i, bad, &mut report)?;
                }
            }
        }
        if self.is_bad() {
            return Ok(report);
        }
        let Some(n) = self.groups()? else {
            return Ok(report);
        };
        let min_idle = self.claim_timeout.as_millis() as u64;
        for i in self.streams_for(slice, n) {
            let mut cursor = "0-0".to_string();
            loop {
                // IDs only: each entry is then fetched and handled on its own, so a
                // recovery never holds more than one entry, and none of those it took
                // waits behind the others.
                let r: RV = self.run(|c| {
                    redis::cmd("XAUTOCLAIM")
                        .arg(self.stream(i))
                        .arg(GROUP)
                        .arg(&self.server.consumer)
                        .arg(min_idle)
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(100)
                        .arg("JUSTID")
                        .query(c)
                })?;
                let parts = array(&r);
                let next = parts.first().and_then(text).unwrap_or_else(|| "0-0".into());
                let live = self
                    .server
                    .live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                for id in parts
                    .get(1)
                    .map(array)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(text)
                {
                    // One this process holds is alive (XAUTOCLAIM just renewed it).
                    if live.contains(&format!("{}#{id}", self.stream(i))) {
                        continue;
                    }
                    let (e, p): (RV, RV) = self.run(|c| {
                        pipe_query(
                            c,
                            redis::pipe()
                                .cmd("XRANGE")
                                .arg(self.stream(i))
                                .arg(&id)
                                .arg(&id)
                                .cmd("XPENDING")
                                .arg(self.stream(i))
                                .arg(GROUP)
                                .arg(&id)
                                .arg(&id)
                                .arg(1),
                        )
                    })?;
                    let deliveries = array(&p)
                        .first()
                        .and_then(|p| array(p).get(3))
                        .and_then(int)
                        .unwrap_or(1);
                    let Some(entry) = array(&e).first() else {
                        // Deleted meanwhile: nothing to recover; forget the claim.
                        let _ = self.run(|c| {
                            redis::cmd("XACK")
                                .arg(self.stream(i))
                                .arg(GROUP)
                                .arg(&id)
                                .query::<RV>(c)
                        });
                        continue;
                    };
                    let f = entry_fields(array(entry).get(1).unwrap_or(&RV::Nil));
                    let fb = f.fb.unwrap_or_else(|| stray_filebase(&id));
                    let kind = Kind::Pending { id };
                    let claim = self.redis_claim(fb.clone(), i, kind, f.meta, f.msg, None);
                    let times = (deliveries - 1).max(1) as i128;
                    if let Err(e) = self.recover_one(claim, times, bad, &mut report) {
                        report.failed.push((fb, e.message));
                    }
                }
                if next == "0-0" || next.is_empty() {
                    break;
                }
                cursor = next;
            }
            self.recover_held(i, bad, &mut report)?;
            let summary: RV = self.run(|c| {
                redis::cmd("XPENDING")
                    .arg(self.stream(i))
                    .arg(GROUP)
                    .query(c)
            })?;
            report.busy += array(&summary).first().and_then(int).unwrap_or(0) as usize;
            self.forget_idle_consumers(i)?;
        }
        Ok(report)
    }

    /// Recovers one entry of a dead holder: ready again with `_bak_count` grown by
    /// `times`, or to `bad` when that reaches `MAX_BAK_COUNT` (or the entry is not one).
    /// Entries of `bad` itself go back as they were.
    fn recover_one(
        &self,
        c: RedisClaim,
        times: i128,
        bad: &Switchboard,
        report: &mut Recovery,
    ) -> Result<()> {
        let fb = c.fb.clone();
        if self.is_bad() {
            if self.requeue(&c, None)? {
                report.recovered.push(fb);
            }
            return Ok(());
        }
        let mut meta = match metadata::from_yaml(&c.meta, &self.location()) {
            Ok(m) => m,
            Err(e) => {
                self.to_bad(c, None, bad)?;
                report.preserved.push((fb, e.message));
                return Ok(());
            }
        };
        let count = bumped_bak_count(&meta, times);
        meta.set("_bak_count", Value::Int(count));
        let yaml = metadata::to_yaml(&meta);
        if count >= MAX_BAK_COUNT {
            self.to_bad(c, Some(yaml.as_bytes()), bad)?;
            report.preserved.push((
                fb,
                format!("recovered {MAX_BAK_COUNT} times (_bak_count: {count})"),
            ));
        } else if self.requeue(&c, Some(yaml.as_bytes()))? {
            report.recovered.push(fb);
        }
        Ok(())
    }

    /// Recovers held entries (of repairs by name) whose holder has been silent for the
    /// claim timeout, each taken over atomically first so two recoveries never both
    /// act on one.
    fn recover_held(&self, i: u32, bad: &Switchboard, report: &mut Recovery) -> Result<()> {
        let keys: Vec<Vec<u8>> = self.run(|c| redis::cmd("HKEYS").arg(self.held(i)).query(c))?;
        let timeout = self.claim_timeout.as_millis().to_string();
        for key in keys {
            let Some(name) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix("t:"))
            else {
                continue;
            };
            let r: RV = self.run(|c| {
                eval(
                    STEAL,
                    &[&self.held(i)],
                    &[
                        name.as_bytes(),
                        self.server.consumer.as_bytes(),
                        timeout.as_bytes(),
                    ],
                )
                .query(c)
            })?;
            let parts = array(&r);
            if parts.len() != 3 {
                report.busy += 1;
                continue;
            }
            // The filebase of a held entry is its key: one that is not valid came from
            // another program and goes to `bad` under a made-up one.
            let (fb, times) = match name.parse::<Filebase>() {
                Ok(fb) => (fb, 1),
                Err(_) => (stray_filebase(name), MAX_BAK_COUNT),
            };
            let kind = Kind::Held {
                holder: text(&parts[2]).unwrap_or_default().into(),
            };
            let meta = bytes(&parts[0]).unwrap_or_default().to_vec();
            let msg = bytes(&parts[1]).unwrap_or_default().to_vec();
            let claim = self.redis_claim(fb.clone(), i, kind, meta, msg, None);
            if let Err(e) = self.recover_one(claim, times, bad, report) {
                report.failed.push((fb, e.message));
            }
        }
        Ok(())
    }

    /// Forgets consumers (dead runners) that hold nothing and have been idle for longer
    /// than the claim timeout (at least a minute), so the group does not grow without
    /// end. Each is checked and removed in one step on the server.
    fn forget_idle_consumers(&self, i: u32) -> Result<()> {
        let info: RV = self.run(|c| {
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(self.stream(i))
                .arg(GROUP)
                .query(c)
        })?;
        let min_idle = self.claim_timeout.as_millis().max(60_000).to_string();
        for consumer in array(&info) {
            let f: HashMap<String, &RV> = array(consumer)
                .chunks(2)
                .filter_map(|kv| match kv {
                    [k, v] => Some((text(k)?, v)),
                    _ => None,
                })
                .collect();
            let Some(name) = f.get("name").and_then(|v| bytes(v)) else {
                continue;
            };
            if name == self.server.consumer.as_bytes() {
                continue;
            }
            let _ = self.run(|c| {
                eval(
                    FORGET,
                    &[&self.stream(i)],
                    &[GROUP.as_bytes(), name, min_idle.as_bytes()],
                )
                .query::<RV>(c)
            });
        }
        Ok(())
    }

    /// The entries with the first `head` bytes of each message, for `list`.
    pub fn heads(&self, head: usize) -> Result<(Vec<Head>, Vec<String>)> {
        let Some(n) = self.groups()? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut out = Vec::new();
        let mut strays = Vec::new();
        for i in 0..n {
            let pending: RV = self.run(|c| {
                redis::cmd("XPENDING")
                    .arg(self.stream(i))
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(i64::MAX)
                    .query(c)
            })?;
            let pending = pending_ids(&pending);
            let mut start = "-".to_string();
            loop {
                let page: RV = self.run(|c| {
                    eval(
                        HEADS,
                        &[&self.stream(i)],
                        &[
                            start.as_bytes(),
                            b"200",
                            head.to_string().as_bytes(),
                            MAX_MESSAGE_BYTES.to_string().as_bytes(),
                        ],
                    )
                    .query(c)
                })?;
                let rows = array(&page);
                for row in rows {
                    let r = array(row);
                    let id = r.first().and_then(text).unwrap_or_default();
                    let name = r.get(1).and_then(text).unwrap_or_default();
                    let Ok(fb) = name.parse::<Filebase>() else {
                        strays.push(format!("{} entry {id}", self.stream(i)));
                        continue;
                    };
                    let state = if self.is_bad() {
                        State::Preserved
                    } else if pending.contains(&id) {
                        State::Claimed
                    } else {
                        State::Ready
                    };
                    out.push(Head {
                        filebase: fb,
                        state,
                        size: r.get(4).and_then(int).unwrap_or(0) as u64,
                        meta: r.get(2).and_then(bytes).unwrap_or_default().to_vec(),
                        head: r.get(3).and_then(bytes).unwrap_or_default().to_vec(),
                    });
                }
                match rows.last().and_then(|r| array(r).first()).and_then(text) {
                    Some(last) => start = format!("({last}"),
                    None => break,
                }
            }
            // Entries held by a repair by name are out of the stream, in the held hash.
            let held: Vec<Vec<u8>> =
                self.run(|c| redis::cmd("HKEYS").arg(self.held(i)).query(c))?;
            for name in held
                .iter()
                .filter_map(|k| std::str::from_utf8(k).ok()?.strip_prefix("m:"))
            {
                let (meta, msg): (Option<Vec<u8>>, Option<Vec<u8>>) = self.run(|c| {
                    redis::cmd("HMGET")
                        .arg(self.held(i))
                        .arg(format!("m:{name}"))
                        .arg(format!("b:{name}"))
                        .query(c)
                })?;
                let (Ok(fb), Some(meta), Some(msg)) = (name.parse::<Filebase>(), meta, msg) else {
                    continue;
                };
                out.push(Head {
                    filebase: fb,
                    state: State::Claimed,
                    size: (meta.len() + msg.len()) as u64,
                    head: msg[..msg.len().min(head)].to_vec(),
                    meta,
                });
            }
        }
        out.sort_by(|a, b| a.filebase.fifo_cmp(&b.filebase));
        Ok((out, strays))
    }

    /// The queues on this server.
    pub fn queue_names(server: &Server) -> Result<Vec<QueueName>> {
        let names: Vec<Vec<u8>> =
            server.run(|c| redis::cmd("SMEMBERS").arg(QUEUES_KEY).query(c))?;
        let mut names: Vec<QueueName> = names
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok()?.parse().ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// A name for a stream entry without a valid filebase (written by another program),
/// so it can be preserved and looked at.
fn stray_filebase(id: &str) -> Filebase {
    let mut hasher = sha1::Sha1::default();
    hasher.update(id.as_bytes());
    Filebase::from_parts(hasher, "--nolist--", &Stamp::now())
}

/// An entry as `list` reads it.
#[derive(Debug)]
pub struct Head {
    pub filebase: Filebase,
    pub state: State,
    pub size: u64,
    /// The metadata as YAML.
    pub meta: Vec<u8>,
    /// The first bytes of the message.
    pub head: Vec<u8>,
}

/// How a Redis entry is claimed.
#[derive(Debug)]
enum Kind {
    /// Delivered to this consumer by `XREADGROUP` (or `XAUTOCLAIM`).
    Pending { id: String },
    /// Taken out of the stream by name into the held hash, by `holder`.
    Held { holder: std::cell::RefCell<String> },
}

/// A claimed Redis entry, with its content.
#[derive(Debug)]
pub struct RedisClaim {
    fb: Filebase,
    stream: u32,
    kind: Kind,
    meta: Vec<u8>,
    msg: Arc<Vec<u8>>,
    location: String,
    touched: Cell<Instant>,
    /// For an entry claimed by this process's pass: marks it live while held.
    _live: Option<Live>,
}

impl From<RedisClaim> for Claim {
    fn from(c: RedisClaim) -> Claim {
        Claim {
            filebase: c.fb.clone(),
            held: Held::Redis(Box::new(c)),
        }
    }
}

impl RedisClaim {
    pub fn read(&self) -> Result<Entry> {
        Entry::from_memory(&self.meta, self.msg.clone(), &self.location)
    }

    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// The metadata as stored (YAML) and the message.
    pub fn raw(&self) -> (&[u8], &[u8]) {
        (&self.meta, &self.msg)
    }
}

/// A runner's pass over some streams of a queue.
pub struct RedisPass {
    /// For a slice finer than the queue's streams: its ready entries, claimed by name.
    by_name: Option<VecDeque<Filebase>>,
    streams: Vec<u32>,
    /// The last ID of each stream when the pass began: the pass ends there, so a pass
    /// ends even while producers keep adding.
    bounds: Vec<Option<(u64, u64)>>,
    done: Vec<bool>,
    buffer: VecDeque<(u32, String, RV, Live)>,
    /// How many entries one read claims: as asked, but one at a time after a read of
    /// large entries, so a runner holds few large ones.
    prefetch: usize,
    asked: usize,
    len: usize,
}

/// A read of more than this many bytes makes the next read claim one entry.
const PREFETCH_BYTES: usize = 8 << 20;

impl RedisPass {
    /// Gives back the entries claimed ahead and not handled (the pass was stopped):
    /// ready again, uncounted, at the end of their streams.
    pub fn give_back(&mut self, q: &RedisQueue) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut cmds = Vec::new();
        for (i, id, _, _live) in self.buffer.drain(..) {
            cmds.push((
                i,
                eval(
                    REQUEUE,
                    &[&q.stream(i), &q.index(i)],
                    &[
                        GROUP.as_bytes(),
                        q.server.consumer.as_bytes(),
                        id.as_bytes(),
                        b"",
                        b"",
                        b"0",
                    ],
                ),
            ));
        }
        q.pipelined(cmds).map(|_| ())
    }

    pub fn count(&self) -> usize {
        self.len
    }

    pub fn next_claim(
        &mut self,
        q: &RedisQueue,
        bad: &Switchboard,
    ) -> Result<Option<(Filebase, Claimed)>> {
        if let Some(names) = &mut self.by_name {
            return match names.pop_front() {
                Some(fb) => {
                    let claimed = q.claim(&fb)?;
                    Ok(Some((fb, claimed)))
                }
                None => Ok(None),
            };
        }
        loop {
            if let Some((i, id, fields, live)) = self.buffer.pop_front() {
                let f = entry_fields(&fields);
                let name = f.fb.clone().unwrap_or_else(|| stray_filebase(&id));
                let kind = Kind::Pending { id };
                let claim = q.redis_claim(name.clone(), i, kind, f.meta, f.msg, Some(live));
                if f.fb.is_none() {
                    // Not an entry qtool wrote: keep it, byte for byte, in `bad`.
                    q.to_bad(claim, None, bad)?;
                    return Ok(Some((name, Claimed::NotRegular)));
                }
                return Ok(Some((name, Claimed::Got(claim.into()))));
            }
            let open: Vec<usize> = (0..self.streams.len()).filter(|&k| !self.done[k]).collect();
            if open.is_empty() {
                return Ok(None);
            }
            let keys: Vec<String> = open.iter().map(|&k| q.stream(self.streams[k])).collect();
            // One read for every stream; on a cluster one per stream (their slots differ).
            let batches: Vec<&[String]> = if q.server.clustered() {
                keys.chunks(1).collect()
            } else {
                vec![&keys[..]]
            };
            let mut replies = Vec::new();
            for batch in batches {
                let r: RV = q.run(|c| {
                    let mut cmd = redis::cmd("XREADGROUP");
                    cmd.arg("GROUP")
                        .arg(GROUP)
                        .arg(&q.server.consumer)
                        .arg("COUNT")
                        .arg(self.prefetch)
                        .arg("STREAMS")
                        .arg(batch);
                    for _ in batch {
                        cmd.arg(">");
                    }
                    cmd.query(c)
                })?;
                replies.extend(array(&r).iter().cloned());
            }
            let r = RV::Array(replies);
            let mut got: HashSet<usize> = HashSet::new();
            let mut read_bytes = 0usize;
            for s in array(&r) {
                let parts = array(s);
                let key = parts.first().and_then(text).unwrap_or_default();
                let Some(pos) = keys.iter().position(|k| *k == key) else {
                    continue;
                };
                let k = open[pos];
                for e in parts.get(1).map(array).unwrap_or_default() {
                    let ea = array(e);
                    let Some(id) = ea.first().and_then(text) else {
                        continue;
                    };
                    got.insert(k);
                    read_bytes += array(ea.get(1).unwrap_or(&RV::Nil))
                        .iter()
                        .map(|v| bytes(v).map_or(0, <[u8]>::len))
                        .sum::<usize>();
                    if self.bounds[k].is_none_or(|b| parse_id(&id) >= b) {
                        self.done[k] = true;
                    }
                    let live = Live::new(&q.server, &q.stream(self.streams[k]), &id);
                    self.buffer.push_back((
                        self.streams[k],
                        id,
                        ea.get(1).cloned().unwrap_or(RV::Nil),
                        live,
                    ));
                }
            }
            for k in open {
                if !got.contains(&k) {
                    self.done[k] = true;
                }
            }
            self.prefetch = if read_bytes > PREFETCH_BYTES {
                1
            } else {
                (self.prefetch * 4).min(self.asked)
            };
        }
    }
}

/// A batch of entries for a Redis queue, added in one pipeline.
#[derive(Debug, Default)]
pub struct RedisBatch {
    items: Vec<Item>,
    bytes: u64,
}

#[derive(Debug)]
struct Item {
    fb: Filebase,
    meta: String,
    msg: Vec<u8>,
}

impl RedisBatch {
    pub fn add(
        &mut self,
        q: &RedisQueue,
        message: &mut dyn Read,
        metadata: Metadata,
        stamp: Stamp,
    ) -> Result<()> {
        let mut msg = Vec::new();
        message
            .take(MAX_MESSAGE_BYTES + 1)
            .read_to_end(&mut msg)
            .map_err(|e| {
                Error::io(
                    "cannot read message for",
                    std::path::Path::new(&q.location()),
                    e,
                )
            })?;
        if msg.len() as u64 > MAX_MESSAGE_BYTES {
            return Err(Error::data(
                format!(
                    "message larger than {} MiB refused by {}: Redis holds every entry whole in memory",
                    MAX_MESSAGE_BYTES >> 20,
                    q.location()
                ),
                "enqueue it to a queue on the filesystem (a runner's path: a directory)",
            ));
        }
        if msg.is_empty() {
            return Err(super::empty_message());
        }
        let meta = metadata::to_yaml(&metadata);
        if meta.len() > MAX_METADATA_BYTES {
            return Err(Error::data(
                format!(
                    "metadata of {} bytes is over the {MAX_METADATA_BYTES}-byte limit",
                    meta.len()
                ),
                "keep large data in the message, not the metadata",
            ));
        }
        let mut hasher = sha1::Sha1::new();
        hasher.update(&msg);
        let fb = Filebase::from_parts(hasher, metadata.listid(), &stamp);
        self.bytes += msg.len() as u64;
        self.items.push(Item { fb, meta, msg });
        Ok(())
    }

    pub fn count(&self) -> usize {
        self.items.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds every entry in one pipeline (one round trip; with `appendfsync always`, one
    /// AOF sync); an entry whose name is taken is added again under a fresh one.
    pub fn commit(&mut self, q: &RedisQueue) -> Result<Vec<Filebase>, BatchError> {
        let items = std::mem::take(&mut self.items);
        self.bytes = 0;
        let fail = |error| BatchError {
            committed: Vec::new(),
            error,
        };
        let n = q.ensure().map_err(fail)?;
        let rows: Vec<(u32, &Filebase, &[u8], &[u8])> = items
            .iter()
            .map(|it| {
                (
                    q.stream_of(&it.fb, n),
                    &it.fb,
                    it.meta.as_bytes(),
                    &it.msg[..],
                )
            })
            .collect();
        crate::fault::point("enqueue.written");
        let ids = q.add_all(&rows).map_err(fail)?;
        // Entries up to the first refused one are committed; those after it that Redis
        // took anyway are taken back, so the committed ones are exactly a prefix.
        if let Some(first) = ids.iter().position(|r| r.is_err()) {
            let why = ids[first].clone().err().unwrap_or_default();
            let later: Vec<(u32, String, &Filebase)> = ids[first..]
                .iter()
                .zip(&rows[first..])
                .filter_map(|(r, row)| match r {
                    Ok(Some(id)) => Some((row.0, id.clone(), row.1)),
                    _ => None,
                })
                .collect();
            let error = match q.unadd(&later) {
                Ok(()) => q.refused(&why),
                Err(e) => e,
            };
            let mut committed = Vec::new();
            for (it, id) in items[..first].iter().zip(&ids[..first]) {
                match id {
                    Ok(Some(_)) => committed.push(it.fb.clone()),
                    _ => match q.add_renaming(&it.fb, it.meta.as_bytes(), &it.msg) {
                        Ok(fb) => committed.push(fb),
                        Err(error) => return Err(BatchError { committed, error }),
                    },
                }
            }
            return Err(BatchError { committed, error });
        }
        let mut committed = Vec::with_capacity(items.len());
        for (it, id) in items.iter().zip(ids) {
            if let Ok(Some(_)) = id {
                committed.push(it.fb.clone());
                continue;
            }
            match q.add_renaming(&it.fb, it.meta.as_bytes(), &it.msg) {
                Ok(fb) => committed.push(fb),
                Err(error) => return Err(BatchError { committed, error }),
            }
        }
        Ok(committed)
    }
}
