//! The configuration file (SPEC §6): where queues live, the lists, and the runners with
//! Mailman's `[runner.master]` defaults. Parsing is strict: an unknown key or a bad
//! value is refused with the file, the key and the reason (exit 78).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{exit, Error, Result};
use crate::queue::redis::{is_redis_url, RedisQueue, Server};
use crate::queue::{Format, QueueName, Switchboard};

/// Where the configuration is looked for when neither `-C` nor `QTOOL_CONFIG` names one.
pub const SEARCH_PATH: [&str; 2] = ["./qtool.yaml", "/etc/qtool/qtool.yaml"];
pub const DEFAULT_QUEUE_DIR: &str = "/var/spool/qtool";
/// How long a claimed Redis entry may go without a sign of life from its holder.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, `None` for the built-in defaults.
    pub source: Option<PathBuf>,
    pub queue_dir: PathBuf,
    pub default_language: String,
    /// When present, entries whose `listid` names no list here are shunted.
    pub lists: Option<BTreeMap<String, ListConfig>>,
    pub runners: BTreeMap<String, RunnerConfig>,
    pub queue_format: Format,
    /// Refuse enqueues when the queue's filesystem has less free space (bytes).
    pub min_free: Option<u64>,
    /// Redis queues: how long a claimed entry may go without a sign of life from its
    /// holder before another runner recovers it.
    pub claim_timeout: Duration,
    /// The Redis servers this process talks to, by URL, one connection each.
    servers: std::sync::Arc<std::sync::Mutex<BTreeMap<String, std::sync::Arc<Server>>>>,
}

#[derive(Debug, Clone, Default)]
pub struct ListConfig {
    pub preferred_language: Option<String>,
}

/// What a runner does with each entry (SPEC §4).
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerSpec {
    /// Run a program (no shell) with the message on stdin.
    Exec(Vec<String>),
    /// Enqueue to another queue.
    Forward(QueueName),
    /// Drop the entry.
    Discard,
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub handler: Option<HandlerSpec>,
    pub instances: u32,
    pub sleep_time: Duration,
    pub max_restarts: u32,
    pub start: bool,
    pub timeout: Option<Duration>,
    pub path: Option<PathBuf>,
}

impl Default for RunnerConfig {
    /// Mailman's `[runner.master]` defaults.
    fn default() -> Self {
        RunnerConfig {
            handler: None,
            instances: 1,
            sleep_time: Duration::from_secs(1),
            max_restarts: 10,
            start: true,
            timeout: None,
            path: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            queue_dir: PathBuf::from(DEFAULT_QUEUE_DIR),
            default_language: "en".into(),
            lists: None,
            runners: BTreeMap::new(),
            queue_format: Format::Native,
            min_free: None,
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            servers: Default::default(),
        }
    }
}

impl Config {
    /// Loads the configuration: `explicit` (from `-C` or `QTOOL_CONFIG`) must exist;
    /// otherwise the first file of the search path that exists; otherwise defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        if let Some(path) = explicit {
            return Config::from_file(path);
        }
        for candidate in SEARCH_PATH {
            let path = Path::new(candidate);
            if path.exists() {
                return Config::from_file(path);
            }
        }
        Ok(Config::default())
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| {
            Error::new(
                exit::CONFIG,
                format!("cannot read config {}: {e}", path.display()),
                "check -C/--config and QTOOL_CONFIG",
            )
        })?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::config(format!("cannot read config {}: {e}", path.display()), "")
            })?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(Error::config(
                format!("config {} is larger than 1 MiB", path.display()),
                "",
            ));
        }
        let mut config = Config::parse(&text, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config> {
        let bad = |key: &str, reason: &str| {
            Error::config(
                format!("{file}: {key}: {reason}"),
                "fix the config file (see `man qtool`, section CONFIGURATION)",
            )
        };
        let mut config = Config::default();
        if text.trim().is_empty() {
            return Ok(config);
        }
        let doc: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| bad("(file)", &format!("not valid YAML: {e}")))?;
        let top = match doc {
            serde_yaml::Value::Null => return Ok(config),
            serde_yaml::Value::Mapping(m) => m,
            _ => return Err(bad("(file)", "expected a mapping of settings")),
        };
        for (k, v) in top {
            let key = key_str(&k).ok_or_else(|| bad("(file)", "keys must be strings"))?;
            match key {
                "queue_dir" => config.queue_dir = PathBuf::from(string(&v).ok_or_else(|| bad(key, "expected a path"))?),
                "default_language" => {
                    config.default_language =
                        string(&v).ok_or_else(|| bad(key, "expected a language code"))?
                }
                "queue_format" => {
                    config.queue_format = match string(&v).as_deref() {
                        Some("native") => Format::Native,
                        Some("mailman") => Format::Mailman,
                        _ => return Err(bad(key, "expected `native` or `mailman`")),
                    }
                }
                "claim_timeout" => {
                    config.claim_timeout = string(&v)
                        .as_deref()
                        .and_then(parse_duration)
                        .filter(|d| *d >= Duration::from_secs(1))
                        .ok_or_else(|| bad(key, "expected a duration of at least 1s, such as 60s or 5m"))?
                }
                "min_free" => {
                    config.min_free = Some(
                        parse_size(&v).ok_or_else(|| bad(key, "expected a size such as 100M or 1G"))?,
                    )
                }
                "lists" => {
                    let mut lists = BTreeMap::new();
                    match v {
                        serde_yaml::Value::Null => {}
                        serde_yaml::Value::Mapping(m) => {
                            for (lk, lv) in m {
                                let name = key_str(&lk)
                                    .ok_or_else(|| bad("lists", "list ids must be strings"))?
                                    .to_string();
                                let here = format!("lists.{name}");
                                let mut list = ListConfig::default();
                                match lv {
                                    serde_yaml::Value::Null => {}
                                    serde_yaml::Value::Mapping(lm) => {
                                        for (fk, fv) in lm {
                                            match key_str(&fk) {
                                                Some("preferred_language") => {
                                                    list.preferred_language = Some(string(&fv).ok_or_else(|| {
                                                        bad(&format!("{here}.preferred_language"), "expected a language code")
                                                    })?)
                                                }
                                                other => {
                                                    return Err(bad(
                                                        &format!("{here}.{}", other.unwrap_or("?")),
                                                        "unknown key (known: preferred_language)",
                                                    ))
                                                }
                                            }
                                        }
                                    }
                                    _ => return Err(bad(&here, "expected a mapping")),
                                }
                                lists.insert(name, list);
                            }
                        }
                        _ => return Err(bad(key, "expected a mapping of list ids")),
                    }
                    config.lists = Some(lists);
                }
                "runners" => match v {
                    serde_yaml::Value::Null => {}
                    serde_yaml::Value::Mapping(m) => {
                        for (rk, rv) in m {
                            let name = key_str(&rk)
                                .ok_or_else(|| bad("runners", "runner names must be strings"))?;
                            let here = format!("runners.{name}");
                            name.parse::<QueueName>()
                                .map_err(|e| bad(&here, &e.message))?;
                            let runner = parse_runner(rv, &here, &bad)?;
                            config.runners.insert(name.to_string(), runner);
                        }
                    }
                    _ => return Err(bad(key, "expected a mapping of runner names")),
                },
                other => {
                    return Err(bad(
                        other,
                        "unknown key (known: queue_dir, default_language, lists, runners, queue_format, min_free, claim_timeout)",
                    ))
                }
            }
        }
        Ok(config)
    }

    /// The runner named `name`: its configuration, or defaults when the config does not
    /// define it (without a config every queue name is a runner).
    pub fn runner(&self, name: &str) -> RunnerConfig {
        self.runners.get(name).cloned().unwrap_or_default()
    }

    /// The switchboard of queue `name`: at the runner's `path` if the config gives one,
    /// else in `queue_dir` (`<queue_dir>/<name>`, or on the Redis server it names),
    /// writing entries in the configured format.
    pub fn switchboard(&self, name: &QueueName) -> Switchboard {
        let location = match self.runners.get(name.as_str()).and_then(|r| r.path.clone()) {
            Some(path) => path,
            None if self.is_redis() => self.queue_dir.clone(),
            None => name.dir_in(&self.queue_dir),
        };
        let text = location.to_string_lossy();
        if is_redis_url(&text) {
            let queue = RedisQueue::new(
                name.clone(),
                self.server(&text),
                self.runner(name.as_str()).instances,
                self.claim_timeout,
            );
            return Switchboard::on_redis(queue);
        }
        Switchboard::new(name.clone(), location, self.queue_format).with_min_free(self.min_free)
    }

    /// True when `queue_dir` names a Redis server.
    pub fn is_redis(&self) -> bool {
        is_redis_url(&self.queue_dir.to_string_lossy())
    }

    /// The connection to the Redis server at `url`, shared by every queue on it.
    fn server(&self, url: &str) -> std::sync::Arc<Server> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .entry(url.to_string())
            .or_insert_with(|| std::sync::Arc::new(Server::new(url)))
            .clone()
    }

    /// The queues in `queue_dir` (its subdirectories with valid queue names, or the
    /// queues recorded on its Redis server), and the queues of runners whose `path`
    /// puts them elsewhere (a Redis one always; a directory one when it exists).
    pub fn queue_names(&self) -> Result<Vec<QueueName>> {
        let mut names = if self.is_redis() {
            let server = self.server(&self.queue_dir.to_string_lossy());
            RedisQueue::queue_names(&server)?
        } else {
            crate::inspect::queue_names(&self.queue_dir)?
        };
        for (name, runner) in &self.runners {
            let Some(path) = &runner.path else { continue };
            let here = is_redis_url(&path.to_string_lossy()) || path.is_dir();
            if let (true, Ok(q)) = (here, name.parse::<QueueName>()) {
                if !names.contains(&q) {
                    names.push(q);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Checks the queue locations: a `redis://` one must be a valid Redis URL (78).
    pub fn check_locations(&self) -> Result<()> {
        let runner_paths = self
            .runners
            .iter()
            .filter_map(|(n, r)| Some((n.as_str(), r.path.as_ref()?)));
        for (what, path) in std::iter::once(("queue_dir", &self.queue_dir)).chain(runner_paths) {
            let text = path.to_string_lossy();
            if is_redis_url(&text) {
                crate::queue::redis::check_url(&text).map_err(|e| {
                    Error::config(
                        format!("{what}: {text}: {e}"),
                        "give a directory, or redis://HOST:PORT/DB",
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The language for entries of `listid` (SPEC §3 step 3): the list's preferred
    /// language, else the default. `None` when lists are defined and this one is not.
    pub fn language_for(&self, listid: Option<&str>) -> Option<String> {
        match (&self.lists, listid) {
            (Some(lists), Some(id)) => lists.get(id).map(|list| {
                list.preferred_language
                    .clone()
                    .unwrap_or_else(|| self.default_language.clone())
            }),
            _ => Some(self.default_language.clone()),
        }
    }
}

fn key_str(v: &serde_yaml::Value) -> Option<&str> {
    v.as_str()
}

fn string(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_runner(
    v: serde_yaml::Value,
    here: &str,
    bad: &dyn Fn(&str, &str) -> Error,
) -> Result<RunnerConfig> {
    let mut r = RunnerConfig::default();
    let m = match v {
        serde_yaml::Value::Null => return Ok(r),
        serde_yaml::Value::Mapping(m) => m,
        _ => return Err(bad(here, "expected a mapping of runner settings")),
    };
    for (k, v) in m {
        let key = key_str(&k).unwrap_or("?").to_string();
        let at = format!("{here}.{key}");
        match key.as_str() {
            "handler" => r.handler = Some(parse_handler(&v, &at, bad)?),
            "instances" => {
                let n = v.as_u64().filter(|n| n.is_power_of_two() && *n <= 1 << 16);
                r.instances = n.ok_or_else(|| bad(&at, "expected a power of two (1, 2, 4, ...)"))? as u32;
            }
            "sleep_time" => {
                r.sleep_time = duration_value(&v).ok_or_else(|| {
                    bad(&at, "expected a duration such as 0.1s, 2m, 1.5h, 1h30m, 1d, 1w")
                })?
            }
            "timeout" => {
                r.timeout = Some(duration_value(&v).ok_or_else(|| {
                    bad(&at, "expected a duration such as 30s, 5m, 1h")
                })?)
            }
            "max_restarts" => {
                r.max_restarts = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(&at, "expected a whole number"))?
            }
            "start" => r.start = v.as_bool().ok_or_else(|| bad(&at, "expected true or false"))?,
            "path" => {
                r.path = Some(PathBuf::from(
                    string(&v).ok_or_else(|| bad(&at, "expected a directory path"))?,
                ))
            }
            _ => {
                return Err(bad(
                    &at,
                    "unknown key (known: handler, instances, sleep_time, max_restarts, start, timeout, path)",
                ))
            }
        }
    }
    Ok(r)
}

fn parse_handler(
    v: &serde_yaml::Value,
    at: &str,
    bad: &dyn Fn(&str, &str) -> Error,
) -> Result<HandlerSpec> {
    const WHAT: &str = "expected {exec: [PROGRAM, ARG...]}, {forward: QUEUE} or discard";
    if v.as_str() == Some("discard") {
        return Ok(HandlerSpec::Discard);
    }
    let m = v.as_mapping().ok_or_else(|| bad(at, WHAT))?;
    if m.len() != 1 {
        return Err(bad(at, WHAT));
    }
    let (k, v) = m.iter().next().expect("one item");
    match key_str(k) {
        Some("exec") => {
            let argv: Option<Vec<String>> = match v {
                serde_yaml::Value::Sequence(items) => items.iter().map(string).collect(),
                serde_yaml::Value::String(s) => Some(vec![s.clone()]),
                _ => None,
            };
            match argv {
                Some(argv) if !argv.is_empty() && !argv[0].is_empty() => {
                    Ok(HandlerSpec::Exec(argv))
                }
                _ => Err(bad(
                    &format!("{at}.exec"),
                    "expected a list: [PROGRAM, ARG...]",
                )),
            }
        }
        Some("forward") => {
            let q =
                string(v).ok_or_else(|| bad(&format!("{at}.forward"), "expected a queue name"))?;
            let q = q
                .parse::<QueueName>()
                .map_err(|e| bad(&format!("{at}.forward"), &e.message))?;
            Ok(HandlerSpec::Forward(q))
        }
        Some("discard") => Ok(HandlerSpec::Discard),
        _ => Err(bad(at, WHAT)),
    }
}

fn duration_value(v: &serde_yaml::Value) -> Option<Duration> {
    match v {
        serde_yaml::Value::String(s) => parse_duration(s),
        serde_yaml::Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(Duration::from_secs_f64),
        _ => None,
    }
}

/// Parses a duration as Mailman's `as_timedelta` does: a sequence of `<number><unit>`
/// with units `w`, `d`, `h`, `m`, `s` (`0.1s`, `2m`, `1.5h`, `1h30m`, `1d`, `1w`); a
/// bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0.0f64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'w' => 7.0 * 86400.0,
            'd' => 86400.0,
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        let n: f64 = number.parse().ok()?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() || !total.is_finite() || total > 1e12 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// Parses a size: bytes, or a number with K, M, G (powers of 1024).
fn parse_size(v: &serde_yaml::Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M') => (&s[..i], 1 << 20),
        (i, 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_mailman() {
        let d = |s| parse_duration(s).map(|d| d.as_secs_f64());
        assert_eq!(d("0.1s"), Some(0.1));
        assert_eq!(d("2m"), Some(120.0));
        assert_eq!(d("1.5h"), Some(5400.0));
        assert_eq!(d("1h30m"), Some(5400.0));
        assert_eq!(d("1d"), Some(86400.0));
        assert_eq!(d("1w"), Some(604800.0));
        assert_eq!(d("3"), Some(3.0));
        assert_eq!(d("3x"), None);
        assert_eq!(d("1h30"), None);
    }

    #[test]
    fn spec_example_parses() {
        let c = Config::parse(
            "queue_dir: /var/spool/qtool\ndefault_language: en\nlists:\n  test.example.com: {preferred_language: fr}\nrunners:\n  in:\n    handler: {exec: [/usr/local/libexec/on-post, --verbose]}\n    instances: 4\n    sleep_time: 1s\n    max_restarts: 10\n    start: true\n    timeout: 5m\n    path: /srv/queues/in\n  pipeline: {handler: {forward: out}}\n  shunt: {start: false}\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.runners["in"].instances, 4);
        assert_eq!(
            c.runners["pipeline"].handler,
            Some(HandlerSpec::Forward("out".parse().unwrap()))
        );
        assert!(!c.runners["shunt"].start);
        assert_eq!(c.language_for(Some("test.example.com")), Some("fr".into()));
        assert_eq!(c.language_for(Some("other")), None);
        assert_eq!(c.language_for(None), Some("en".into()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        for text in [
            "queue_dri: /x",
            "runners: {in: {instance: 2}}",
            "runners: {in: {instances: 3}}",
            "runners: {in: {sleep_time: soon}}",
            "runners: {in: {handler: {exec: []}}}",
            "runners: {'../x': {}}",
        ] {
            let e = Config::parse(text, "f.yaml").unwrap_err();
            assert_eq!(e.code, 78, "{text}");
            assert!(e.message.starts_with("f.yaml: "), "{}", e.message);
        }
    }
}
