//! Entry metadata: the values Mailman keeps beside a message, the enqueue rules of
//! SPEC §2, the YAML form of native entries, and Python `str()`/`repr()` rendering for
//! `dump` (SPEC §7).
//!
//! Values are a small model of the Python objects Mailman pickles: `None`, booleans,
//! integers of any size, floats, text, bytes, lists, tuples and dicts. Native entries
//! store them as YAML 1.2 (core schema); the few Python types YAML has no word for are
//! tagged: `!tuple [..]`, `!bytes <base64>`, `!int "<digits>"` for integers outside
//! 128 bits.

use std::fmt::Write as _;

use crate::error::{Error, Result};

/// The deepest nesting accepted in metadata (SPEC §2).
pub const MAX_DEPTH: usize = 64;
/// The largest metadata block read from an entry or a file, in bytes.
pub const MAX_METADATA_BYTES: usize = 4 << 20;

/// One metadata value, as Python would hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i128),
    /// An integer outside `i128`, kept as its decimal digits (with an optional `-`).
    BigInt(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// A dict in insertion order; keys are any hashable value (strings in practice).
    Dict(Vec<(Value, Value)>),
}

/// The metadata of one entry: a mapping with string keys, in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    items: Vec<(String, Value)>,
}

impl Metadata {
    pub fn new() -> Self {
        Metadata::default()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing value in place (keeping its position).
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.items.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.items.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.items.iter().position(|(k, _)| k == key)?;
        Some(self.items.remove(at).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Merges `other` into `self`, `other` winning.
    pub fn merge(&mut self, other: Metadata) {
        for (k, v) in other.items {
            self.set(k, v);
        }
    }

    /// A string value, if `key` holds one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Python truthiness of `key` (absent is false).
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key).is_some_and(Value::truthy)
    }

    /// The list id the entry is for, `--nolist--` when none (Mailman's hash input).
    pub fn listid(&self) -> &str {
        self.get_str("listid").unwrap_or("--nolist--")
    }

    /// The enqueue rules of SPEC §2, as Mailman's `Switchboard.enqueue` applies them:
    /// volatile `_` keys dropped, `_parsemsg` set, `version: 3`, `received_time` kept or
    /// set to `now`.
    pub fn prepare_for_enqueue(&mut self, plaintext: bool, now: f64) {
        self.items.retain(|(k, _)| !k.starts_with('_'));
        self.set("version", Value::Int(3));
        if self.get("received_time").is_none() {
            self.set("received_time", Value::Float(now));
        }
        self.set("_parsemsg", Value::Bool(plaintext));
    }

    pub fn into_items(self) -> Vec<(String, Value)> {
        self.items
    }
}

impl FromIterator<(String, Value)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut m = Metadata::new();
        for (k, v) in iter {
            m.set(k, v);
        }
        m
    }
}

impl Value {
    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::List(v) | Value::Tuple(v) => !v.is_empty(),
            Value::Dict(d) => !d.is_empty(),
        }
    }

    /// The value as Python's `str()` prints it: strings bare, everything else as `repr()`.
    pub fn python_str(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.python_repr(),
        }
    }

    /// The value as Python's `repr()` prints it.
    pub fn python_repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::BigInt(digits) => out.push_str(digits),
            Value::Float(f) => out.push_str(&python_float_repr(*f)),
            Value::Str(s) => write_str_repr(s, out),
            Value::Bytes(b) => write_bytes_repr(b, out),
            Value::List(items) => {
                out.push('[');
                write_seq(items, out);
                out.push(']');
            }
            Value::Tuple(items) => {
                out.push('(');
                write_seq(items, out);
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Value::Dict(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_seq(items: &[Value], out: &mut String) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        v.write_repr(out);
    }
}

/// Python's `repr(str)`: single quotes unless the text has a `'` and no `"`.
fn write_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_python_unprintable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    let _ = write!(out, "\\x{n:02x}");
                } else if n <= 0xffff {
                    let _ = write!(out, "\\u{n:04x}");
                } else {
                    let _ = write!(out, "\\U{n:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// An approximation of Python's `str.isprintable()` for the characters Mailman metadata
/// carries: C1 controls, separators other than space, and surrogates/private use are not.
fn is_python_unprintable(c: char) -> bool {
    let n = c as u32;
    (0x80..=0xa0).contains(&n)
        || n == 0xad
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x206f).contains(&n)
        || n == 0x3000
        || n == 0xfeff
        || (0xe000..=0xf8ff).contains(&n)
        || (0xfff9..=0xfffb).contains(&n)
}

/// Python's `repr(bytes)`.
fn write_bytes_repr(b: &[u8], out: &mut String) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    out.push('b');
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c as char == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(quote);
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when
/// the decimal exponent is in `[-4, 16)`, otherwise scientific with a two-digit exponent
/// (`1e-07`, `1.5e+16`).
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// YAML

/// Parses a metadata block (a YAML mapping with string keys). An empty document is an
/// empty mapping. Deep nesting and alias bombs are refused (65).
pub fn from_yaml(text: &[u8], what: &str) -> Result<Metadata> {
    if text.len() > MAX_METADATA_BYTES {
        return Err(Error::data(
            format!("{what}: metadata larger than {MAX_METADATA_BYTES} bytes"),
            "metadata this large is refused; keep large data in the message",
        ));
    }
    let text = std::str::from_utf8(text)
        .map_err(|_| Error::data(format!("{what}: metadata is not UTF-8"), ""))?;
    if text.trim().is_empty() {
        return Ok(Metadata::new());
    }
    let doc = match parse_node(text, what) {
        Err(e) if e.message.contains("duplicate entry") => parse_node(&last_key_wins(text), what)?,
        other => other?,
    };
    match doc {
        Node::Null => Ok(Metadata::new()),
        Node::Map(map) => {
            let mut meta = Metadata::new();
            for (k, v) in map {
                let key = match k {
                    Node::Str(s) => s,
                    other => {
                        return Err(Error::data(
                            format!(
                                "{what}: metadata key {} is not a string",
                                from_node(other, 1, what)?.python_repr()
                            ),
                            "metadata keys are strings",
                        ))
                    }
                };
                meta.set(key, from_node(v, 1, what)?);
            }
            Ok(meta)
        }
        _ => Err(Error::data(
            format!("{what}: metadata is not a mapping of keys to values"),
            "write metadata as `key: value` lines",
        )),
    }
}

/// Parses YAML into a [`Node`] with bounded work: serde_yaml limits recursion (deeper
/// than 128 is an error) and alias events, and the node budget below limits what
/// aliases can expand to (a few aliases of a large string add up to gigabytes).
fn parse_node(text: &str, what: &str) -> Result<Node> {
    check_nesting(text, what)?;
    NODE_BUDGET.with(|b| b.set(EXPANSION_LIMIT.max(text.len() * 4)));
    serde_yaml::from_str(text).map_err(|e| yaml_error(e, what))
}

fn yaml_error(e: serde_yaml::Error, what: &str) -> Error {
    let text = e.to_string();
    if text.contains("recursion limit exceeded") {
        too_deep(what)
    } else if text.contains(EXPANDS) || text.contains("repetition limit exceeded") {
        Error::data(
            format!(
                "{what}: metadata expands beyond {} MiB (YAML aliases)",
                EXPANSION_LIMIT >> 20
            ),
            "write the values out instead of repeating them with aliases",
        )
    } else {
        Error::data(format!("{what}: metadata is not valid YAML: {text}"), "")
    }
}

/// How much a metadata document may expand to (bytes of text plus a charge per node).
const EXPANSION_LIMIT: usize = 16 << 20;
const EXPANDS: &str = "metadata expands too far";

thread_local! {
    static NODE_BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Charges `cost` to the expansion budget of the parse in progress.
fn charge<E: serde::de::Error>(cost: usize) -> std::result::Result<(), E> {
    NODE_BUDGET.with(|b| match b.get().checked_sub(cost + 16) {
        Some(left) => {
            b.set(left);
            Ok(())
        }
        None => Err(E::custom(EXPANDS)),
    })
}

/// Drops earlier top-level entries whose key appears again later, so that a `key: value`
/// line a shell handler appends replaces the value before it (as PyYAML reads it).
fn last_key_wins(text: &str) -> String {
    // Split into top-level chunks: a line at column 0 and the indented lines after it.
    let mut chunks: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        let top = !line.starts_with([' ', '\t', '#', '\n', '\r']) && !line.trim().is_empty();
        match chunks.last_mut() {
            Some(chunk) if !top => chunk.push_str(line),
            _ => chunks.push(line.to_string()),
        }
    }
    let key_of = |chunk: &str| -> Option<String> {
        match parse_node(chunk, "").ok()? {
            Node::Map(mut m) if m.len() == 1 => match m.pop()?.0 {
                Node::Str(k) => Some(k),
                _ => None,
            },
            _ => None,
        }
    };
    let keys: Vec<Option<String>> = chunks.iter().map(|c| key_of(c)).collect();
    chunks
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            keys[*i]
                .as_ref()
                .is_none_or(|k| !keys[i + 1..].iter().any(|later| later.as_ref() == Some(k)))
        })
        .map(|(_, c)| c.as_str())
        .collect()
}

/// Reads one value the way `-m KEY=VALUE` does: YAML 1.2 core schema.
pub fn value_from_yaml_text(text: &str, what: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Str(text.to_string()));
    }
    let v = parse_node(text, what)?;
    from_node(v, 1, what)
}

/// Refuses text that nests flow collections deeper than `MAX_DEPTH`, or indents a line
/// absurdly far, before the YAML parser sees it: the parser's own cost grows faster than
/// linearly with nesting, so 100 000 `[` would take it minutes. Brackets inside quoted
/// strings, comments and plain words (`a[1]`) do not count.
fn check_nesting(text: &str, what: &str) -> Result<()> {
    const MAX_INDENT: usize = 1024;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut prev = '\n';
    let mut indent = Some(0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if is_boundary(prev) => quote = Some(c),
            (None, '[' | '{') if is_boundary(prev) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(what));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            (None, '#') if prev.is_whitespace() => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            _ => {}
        }
        indent = match (c, indent) {
            ('\n', _) => Some(0),
            (' ', Some(n)) => Some(n + 1),
            _ => None,
        };
        if indent.is_some_and(|n| n > MAX_INDENT) {
            return Err(too_deep(what));
        }
        prev = c;
    }
    Ok(())
}

fn is_boundary(c: char) -> bool {
    c.is_whitespace() || matches!(c, '[' | '{' | ',' | ':' | '-' | '?')
}

fn too_deep(what: &str) -> Error {
    Error::data(
        format!("{what}: metadata nests deeper than {MAX_DEPTH} levels"),
        "flatten the metadata",
    )
}

/// A parsed YAML node: like `serde_yaml::Value`, but with 128-bit integers (Python's
/// ints outgrow 64 bits) and tags kept by name.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    /// An integer beyond `i128`, as digits.
    Big(String),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Tagged(String, Box<Node>),
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> serde::de::Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> std::result::Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> std::result::Result<Node, E> {
        Ok(i128::try_from(v).map_or_else(|_| Node::Big(v.to_string()), Node::Int))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Node, E> {
        charge(v.len())?;
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<Node, E> {
        charge(v.len())?;
        Ok(Node::Str(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut a: A,
    ) -> std::result::Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = a.next_element()? {
            charge(0)?;
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut a: A,
    ) -> std::result::Result<Node, A::Error> {
        let mut items: Vec<(Node, Node)> = Vec::new();
        while let Some((k, v)) = a.next_entry::<Node, Node>()? {
            charge(0)?;
            if let Node::Str(key) = &k {
                if items
                    .iter()
                    .any(|(other, _)| matches!(other, Node::Str(o) if o == key))
                {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate entry with key \"{key}\""
                    )));
                }
            }
            items.push((k, v));
        }
        Ok(Node::Map(items))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(
        self,
        a: A,
    ) -> std::result::Result<Node, A::Error> {
        use serde::de::VariantAccess;
        let (tag, content): (String, _) = a.variant()?;
        let value: Node = content.newtype_variant()?;
        Ok(Node::Tagged(
            tag.trim_start_matches('!').to_string(),
            Box::new(value),
        ))
    }
}

fn from_node(v: Node, depth: usize, what: &str) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(too_deep(what));
    }
    let all = |items: Vec<Node>| -> Result<Vec<Value>> {
        items
            .into_iter()
            .map(|i| from_node(i, depth + 1, what))
            .collect()
    };
    Ok(match v {
        Node::Null => Value::None,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::Int(i),
        Node::Big(d) => Value::BigInt(d),
        Node::Float(f) => Value::Float(f),
        Node::Str(s) => Value::Str(s),
        Node::Seq(items) => Value::List(all(items)?),
        Node::Map(pairs) => Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    Ok((
                        from_node(k, depth + 1, what)?,
                        from_node(v, depth + 1, what)?,
                    ))
                })
                .collect::<Result<_>>()?,
        ),
        Node::Tagged(tag, inner) => match (tag.as_str(), *inner) {
            ("tuple", Node::Seq(items)) => Value::Tuple(all(items)?),
            ("int", Node::Str(digits)) if is_decimal_integer(&digits) => {
                match digits.parse::<i128>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::BigInt(digits),
                }
            }
            ("bytes", Node::Str(b64)) => {
                Value::Bytes(base64_decode(&b64).ok_or_else(|| {
                    Error::data(format!("{what}: !bytes value is not base64"), "")
                })?)
            }
            (tag, _) => {
                return Err(Error::data(
                    format!("{what}: unknown YAML tag !{tag} in metadata"),
                    "qtool knows !tuple, !int and !bytes",
                ))
            }
        },
    })
}

fn is_decimal_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The metadata as a plain YAML mapping without document markers: one `key: value`
/// line per key, values in flow style (strings plain when that is unambiguous, else
/// double-quoted), so a shell handler can read and append lines, no line is ever `...`,
/// and YAML 1.1 readers do not mistake `yes` or `on` for booleans. `{}` when empty.
pub fn to_yaml(meta: &Metadata) -> String {
    if meta.is_empty() {
        return "{}\n".to_string();
    }
    let mut out = String::new();
    for (k, v) in meta.iter() {
        write_yaml_str(k, &mut out);
        out.push_str(": ");
        write_yaml_flow(v, &mut out);
        out.push('\n');
    }
    out
}

fn write_yaml_flow(v: &Value, out: &mut String) {
    match v {
        Value::None => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(d) => {
            let _ = write!(out, "!int \"{d}\"");
        }
        Value::Float(f) if f.is_nan() => out.push_str(".nan"),
        Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { ".inf" } else { "-.inf" }),
        Value::Float(f) => out.push_str(&python_float_repr(*f)),
        Value::Str(s) => write_yaml_str(s, out),
        Value::Bytes(b) => {
            let _ = write!(out, "!bytes \"{}\"", base64_encode(b));
        }
        Value::List(items) | Value::Tuple(items) => {
            if matches!(v, Value::Tuple(_)) {
                out.push_str("!tuple ");
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml_flow(item, out);
            }
            out.push(']');
        }
        Value::Dict(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml_flow(k, out);
                out.push_str(": ");
                write_yaml_flow(v, out);
            }
            out.push('}');
        }
    }
}

/// A string as a YAML scalar: plain when it can only be read back as this string (by
/// YAML 1.1 and 1.2 readers alike), otherwise double-quoted with JSON escapes.
/// True when `s` can be written as a plain YAML scalar and read back as this string
/// by YAML 1.1 and 1.2 readers alike.
pub fn is_plain_yaml_str(s: &str) -> bool {
    const WORDS: [&str; 14] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf", "~", "<<", "=",
    ];
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '/' | '+' | '-'))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

fn write_yaml_str(s: &str, out: &mut String) {
    if is_plain_yaml_str(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // YAML's printable set is TAB, LF, CR, 0x20-0x7E, 0x85, 0xA0-0xD7FF,
            // 0xE000-0xFFFD and above; NEL, the line and paragraph separators and the
            // BOM are breaks or marks to some readers. Everything else is escaped.
            c if (c as u32) < 0x20
                || (0x7f..=0xa0).contains(&(c as u32))
                || matches!(c as u32, 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff) =>
            {
                let n = c as u32;
                if n <= 0xff {
                    let _ = write!(out, "\\x{n:02x}");
                } else {
                    let _ = write!(out, "\\u{n:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON rendering for `dump --format json`: tuples become arrays, bytes strings
/// (lossily), big integers numbers where JSON can hold them.
pub fn to_json(meta: &Metadata) -> serde_json::Value {
    serde_json::Value::Object(
        meta.iter()
            .map(|(k, v)| (k.to_string(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        // Integers of any size are JSON numbers, as Python's json.dumps writes them.
        Value::Int(i) => json_number(&i.to_string()),
        Value::BigInt(d) => json_number(d),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Str(s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(items) | Value::Tuple(items) => {
            J::Array(items.iter().map(value_to_json).collect())
        }
        Value::Dict(pairs) => J::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.python_str(), value_to_json(v)))
                .collect(),
        ),
    }
}

fn json_number(digits: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Number>(digits)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|_| serde_json::Value::String(digits.to_string()))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), for `!bytes` values and encoded words.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Renders metadata as Mailman's `dump_msgdata` does: `*Empty*`, or sorted `key: value`
/// lines padded to the longest key, values as Python's `str()`.
pub fn dump_msgdata(meta: &Metadata, skip: &[&str]) -> String {
    let mut keys: Vec<&str> = meta
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !skip.contains(k))
        .collect();
    if keys.is_empty() {
        return "*Empty*\n".to_string();
    }
    keys.sort_unstable();
    let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for key in keys {
        let value = meta.get(key).expect("key listed from the same mapping");
        let _ = writeln!(out, "{key:<width$}: {}", value.python_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (0.5, "0.5"),
            (1e-7, "1e-07"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1733342400.1234567, "1733342400.1234567"),
            (100.0, "100.0"),
        ] {
            assert_eq!(python_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn str_repr_matches_python() {
        assert_eq!(Value::Str("it's".into()).python_repr(), "\"it's\"");
        assert_eq!(Value::Str("a'b\"".into()).python_repr(), "'a\\'b\"'");
        assert_eq!(Value::Str("Grüße\n".into()).python_repr(), "'Grüße\\n'");
        assert_eq!(
            Value::Tuple(vec![Value::Str("a".into())]).python_repr(),
            "('a',)"
        );
        assert_eq!(Value::Bytes(b"a\x00".to_vec()).python_repr(), "b'a\\x00'");
    }

    #[test]
    fn yaml_round_trip_keeps_types() {
        let mut m = Metadata::new();
        for s in [
            "yes", "no", "on", "1.0", "~", "null", "", "...", "---", "a: b",
        ] {
            m.set(format!("s{s}"), Value::Str(s.into()));
        }
        m.set(
            "big",
            Value::BigInt("123456789012345678901234567890123456789012".into()),
        );
        m.set("i", Value::Int(u64::MAX as i128 + 1));
        m.set("t", Value::Tuple(vec![Value::Int(1)]));
        m.set("b", Value::Bytes(vec![0, 1, 255]));
        m.set("f", Value::Float(1e-7));
        m.set(
            "d",
            Value::Dict(vec![(
                Value::Str("k".into()),
                Value::List(vec![Value::None]),
            )]),
        );
        let text = to_yaml(&m);
        assert_eq!(from_yaml(text.as_bytes(), "t").unwrap(), m, "{text}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_yaml(deep.as_bytes(), "t").is_err());
    }
}
