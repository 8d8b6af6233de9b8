//! GNU Mailman 3 queue files: a reader that never runs code, and a writer.
//!
//! A Mailman 3 queue file (`.pck`, `.bak`, `.psv`) is two Python pickles one after the
//! other: the message, then the metadata dict (`Switchboard.enqueue`). The message is
//! either an `email.message.Message` object (pickled at the highest protocol), or, for
//! entries Mailman enqueued with `_plaintext` (metadata `_parsemsg: True`), the message
//! text as a `str` pickled at protocol 0.
//!
//! # Safety model: why reading a pickle here runs no code
//!
//! Python's `pickle.load` is a small stack machine whose `GLOBAL`/`STACK_GLOBAL` opcodes
//! import any attribute of any module and whose `REDUCE`/`NEWOBJ`/`BUILD`/`INST`/`OBJ`
//! opcodes call it: loading an untrusted pickle runs whatever it names
//! (`posix.system`, `builtins.eval`, ...). This module implements the same stack
//! machine ([`decode`]) over *data only*:
//!
//! * Nothing is ever imported, looked up or called. A global is only ever a *name*; it is
//!   checked against a fixed allow-list when the opcode that names it is read, and any
//!   other name is refused right there (an [`Error::data`] naming it) before the opcode
//!   that would call it is reached.
//! * The allow-list holds the classes that make up a message: `mailman.email.message`
//!   messages and notifications, `email.message.Message`, the `email.mime.*` classes,
//!   the inert helper objects a message carries (`email._policybase.Compat32`,
//!   `email.policy.EmailPolicy`, `email.charset.Charset`, `email.header.Header`,
//!   `email.errors.*Defect`), and the few builtins that protocols 0 to 3 use to spell
//!   plain data (`copyreg._reconstructor`, `builtins.set`/`frozenset`/`bytes`/
//!   `bytearray`/`object`, `_codecs.encode`). "Calling" one of them is emulated: a class
//!   becomes an inert record of its attributes (never its `__init__`/`__setstate__`),
//!   and the builtins are replaced by what they compute on plain values.
//! * `PERSID`/`BINPERSID` (persistent ids), `EXT1/2/4` (the extension registry) and
//!   `NEXT_BUFFER` (out-of-band buffers) are refused; so is every unknown opcode.
//! * Hostile input cannot make it misbehave: every length is checked against the bytes
//!   that remain before anything is allocated, each opcode allocates at most one object
//!   (so memory is linear in the input), integers are limited to Python's 4300 digits,
//!   the stack and memo are checked like CPython checks them, and the objects are kept
//!   in an arena addressed by index so that self-referential structures (a list that
//!   contains itself) are just indices. Turning objects into values or message text is
//!   the only recursion; it stops at the crate's nesting limit (64, [`MAX_DEPTH`]),
//!   which also cuts cycles, and a budget bounds the output so that shared references
//!   cannot expand exponentially. Nothing here panics on any input.
//!
//! # The message
//!
//! A message object becomes its text as Mailman's `msg.as_string()` prints it: the
//! email package's `Generator` with the message's policy (compat32), `mangle_from_=False`
//! and `maxheaderlen=0` (so nothing is refolded), without the Unix From line. Headers are
//! written in order as compat32's `fold` writes them (stored continuation lines kept,
//! line ends normalised, non-ASCII values as RFC 2047 words, `Header` objects encoded),
//! text payloads with their line ends normalised, multiparts with their boundary,
//! preamble and epilogue, nested parts recursively, `message/rfc822` and
//! `message/delivery-status` parts as the generator handles them. The text is encoded
//! as UTF-8.
//!
//! The email package keeps bytes it could not decode (a message read from bytes, as
//! Mailman's LMTP runner reads it) as lone surrogates `U+DC80..U+DCFF` ("surrogate
//! escapes"). Such data is written back as the original bytes, rather than re-encoded
//! as `as_string()` does (it turns such a header into an `=?unknown-8bit?...?=` word
//! and such a body into quoted-printable or base64 with a rewritten
//! Content-Transfer-Encoding): qtool keeps messages as bytes, and the bytes that arrived
//! are the faithful answer. Precisely, the result is what
//! `BytesGenerator(fp, mangle_from_=False, maxheaderlen=0).flatten(msg)` writes, which
//! is `as_string()` byte for byte for every message without surrogate escapes.
//! Where the result differs from Python's:
//!
//! * A multipart without a boundary (Mailman's digests before they are first
//!   flattened) gets one as the generator makes it (`===============<19 digits>==`),
//!   with the number derived from the content instead of random.
//! * `Header` chunks in a charset other than US-ASCII, UTF-8, ISO-8859-1 and
//!   unknown-8bit (say the ISO-8859-2 subject of a notification to a Czech list) are
//!   encoded as UTF-8, and labelled so, instead of in that charset: the header reads
//!   the same, in other bytes. (Bodies are not affected: the email package keeps them
//!   encoded.)
//! * A message whose policy is `email.policy.EmailPolicy` (Mailman never uses one) is
//!   written with compat32's rules; the `linesep` of any policy is honoured.
//! * Header lines longer than 1,000,000 characters are not folded (Python folds them).
//!
//! A header value that would write an embedded header line (`\nName: ...`) is refused,
//! as Python's email package refuses it.
//!
//! A message pickled as `str` (a `_parsemsg: True` entry) is that text as UTF-8 (with
//! surrogate escapes written back as their bytes); one pickled as `bytes` is used as is.
//!
//! # Limits
//!
//! Integers of more than 4300 digits (Python's own limit), metadata nested deeper than
//! 64 levels or with more than 10,000 keys, message parts nested deeper than 64 levels,
//! and files whose shared references would expand to more than 64 MiB plus four times
//! the file's size are refused with [`Error::data`].
//!
//! # Writing
//!
//! [`encode`] writes what `Switchboard.enqueue` writes for a `_plaintext` entry: the
//! message as a `str`, then the metadata dict, so that a running Mailman dequeues it
//! with `email.message_from_string`. The message bytes become that `str` the way the
//! email package itself turns bytes into text (`message_from_bytes`, and so Mailman's
//! LMTP runner): ASCII as is, every other byte as its surrogate escape. Nothing is
//! refused or lost: Mailman parses exactly the message it would have parsed had the
//! bytes arrived by LMTP, `get_payload(decode=True)` returns the original bytes, and
//! reading the file back gives the same bytes. (Pickle keeps lone surrogates: protocol
//! 1 and later store text as UTF-8 with `surrogatepass`.) Mailman's `original_size`
//! is then `len(str)`, the number of bytes.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::metadata::{Metadata, Value, MAX_DEPTH};

/// True when `head` (the first bytes of a file) looks like a Mailman pickle file: a
/// `PROTO` opcode (`0x80` and a protocol up to 5), or an opcode that can open a protocol
/// 0 or 1 pickle of a message or a dict (`(`, `}`, `]`, `V`, `S`, `X`, `c`), rather than
/// a native qtool entry, which starts with `---\n`.
pub fn looks_like_pickle(head: &[u8]) -> bool {
    match head.first() {
        Some(0x80) => head.get(1).is_none_or(|&p| p <= HIGHEST_PROTOCOL),
        Some(b'(' | b'}' | b']' | b'V' | b'S' | b'X' | b'c') => true,
        _ => false,
    }
}

/// A decoded Mailman queue file.
#[derive(Debug, Clone, PartialEq)]
pub struct MailmanEntry {
    /// The message bytes (see the module documentation for how an object becomes text).
    pub message: Vec<u8>,
    /// The metadata dict, in its order. `original_size` is *not* added here.
    pub metadata: Metadata,
    /// True when the message pickle was a `str` (Mailman's `_parsemsg: True`).
    pub message_was_text: bool,
    /// For a text message, Python's `len()` of it: the number of characters Mailman's
    /// `Switchboard.dequeue` stores as `original_size`. This is the exact count, which
    /// the bytes alone cannot give (a surrogate escape is one character but may form a
    /// multi-byte UTF-8 sequence with its neighbours). `None` for message objects.
    pub original_size: Option<usize>,
}

/// Decodes a whole Mailman queue file as data only: never imports or calls anything
/// (see the module documentation). Errors are [`Error::data`] (65).
pub fn decode(bytes: &[u8]) -> Result<MailmanEntry> {
    let out_limit = output_budget(bytes.len());
    let first = load(bytes, 0, "message")?;
    let (message, message_was_text, original_size) = message_of(&first, out_limit)?;
    if first.end >= bytes.len() {
        return Err(Error::data(
            format!(
                "Mailman queue file ends after the message pickle (at byte {}): the metadata pickle is missing",
                first.end
            ),
            "the file is truncated",
        ));
    }
    let second = load(bytes, first.end, "metadata")?;
    let metadata = metadata_of(&second, out_limit)?;
    Ok(MailmanEntry {
        message,
        metadata,
        message_was_text,
        original_size,
    })
}

/// Encodes a Mailman queue file that GNU Mailman 3's `Switchboard.dequeue` reads: the
/// message as a pickled `str`, then the metadata dict, both at pickle protocol 4
/// (Python 3.4 and later). Metadata keys keep their order.
///
/// The message bytes become the `str` the email package makes of bytes (ASCII as is,
/// every other byte as its surrogate escape `U+DC80 + byte`, which pickle stores with
/// `surrogatepass`), so nothing is refused and nothing is lost; see the module
/// documentation. Because the message is text, `_parsemsg` is always written as `True`
/// (in place if the caller set it, appended otherwise): any other value would make
/// Mailman treat the text as a message object.
///
/// Errors (65): a value nested deeper than [`MAX_DEPTH`], a dict key Python cannot hash
/// (a list or dict), or a malformed big integer.
pub fn encode(message: &[u8], metadata: &Metadata) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 8 + 256);
    out.extend_from_slice(&[0x80, 4]);
    write_text(&mut out, &surrogateescape_decode(message));
    out.push(b'.');

    out.extend_from_slice(&[0x80, 4, b'}']);
    let mut wrote_parsemsg = false;
    out.push(b'(');
    for (key, value) in metadata.iter() {
        write_text(&mut out, key.as_bytes());
        if key == "_parsemsg" {
            out.push(0x88);
            wrote_parsemsg = true;
        } else {
            write_value(&mut out, value, 1, key)?;
        }
    }
    if !wrote_parsemsg {
        write_text(&mut out, b"_parsemsg");
        out.push(0x88);
    }
    out.push(b'u');
    out.push(b'.');
    Ok(out)
}

// =======================================================================================
// Python text

/// The highest pickle protocol Python 3.11 writes and reads.
const HIGHEST_PROTOCOL: u8 = 5;
/// Python's `sys.int_max_str_digits` default: longer integers are refused.
const MAX_INT_DIGITS: usize = 4300;
/// The most top-level metadata keys accepted (Mailman writes a few dozen); this bounds
/// the work of building the ordered [`Metadata`].
const MAX_METADATA_KEYS: usize = 10_000;

/// Python text as generalized UTF-8: UTF-8 that may also hold lone surrogates
/// (`U+D800..U+DFFF` as three bytes `ED A0..BF xx`), the way pickle stores `str` with
/// `surrogatepass`. Every `Text` made here is valid in that sense.
type Text = Vec<u8>;

fn push_cp(out: &mut Vec<u8>, cp: u32) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x10000 {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// The code point at `i` and its length in bytes. Any byte that does not start a
/// sequence reads as U+FFFD of length 1, so this is total.
fn cp_at(s: &[u8], i: usize) -> (u32, usize) {
    let b0 = s[i];
    if b0 < 0x80 {
        return (b0 as u32, 1);
    }
    let (len, init) = match b0 {
        0xC2..=0xDF => (2, (b0 & 0x1F) as u32),
        0xE0..=0xEF => (3, (b0 & 0x0F) as u32),
        0xF0..=0xF4 => (4, (b0 & 0x07) as u32),
        _ => return (0xFFFD, 1),
    };
    if i + len > s.len() {
        return (0xFFFD, 1);
    }
    let mut cp = init;
    for &b in &s[i + 1..i + len] {
        if b & 0xC0 != 0x80 {
            return (0xFFFD, 1);
        }
        cp = cp << 6 | (b & 0x3F) as u32;
    }
    (cp, len)
}

/// Iterates `(byte offset, code point, byte length)`.
fn code_points(s: &[u8]) -> impl Iterator<Item = (usize, u32, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= s.len() {
            return None;
        }
        let (cp, len) = cp_at(s, i);
        let item = (i, cp, len);
        i += len;
        Some(item)
    })
}

/// UTF-8 as Python decodes it with `surrogatepass` (what `BINUNICODE` holds).
fn valid_text(s: &[u8]) -> bool {
    if std::str::from_utf8(s).is_ok() {
        return true;
    }
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            i += 1;
            continue;
        }
        let (len, lo, hi) = match b {
            0xC2..=0xDF => (2, 0x80, 0xBF),
            0xE0 => (3, 0xA0, 0xBF),
            0xE1..=0xEF => (3, 0x80, 0xBF),
            0xF0 => (4, 0x90, 0xBF),
            0xF1..=0xF3 => (4, 0x80, 0xBF),
            0xF4 => (4, 0x80, 0x8F),
            _ => return false,
        };
        if i + len > s.len() || !(lo..=hi).contains(&s[i + 1]) {
            return false;
        }
        if s[i + 2..i + len].iter().any(|b| b & 0xC0 != 0x80) {
            return false;
        }
        i += len;
    }
    true
}

/// True when the text holds a lone surrogate (in valid text, `ED` is always a lead
/// byte, and `ED A0..BF` encodes a surrogate).
fn has_surrogates(s: &[u8]) -> bool {
    s.windows(2).any(|w| w[0] == 0xED && w[1] >= 0xA0)
}

/// Python's `len()`: the number of code points.
fn char_len(s: &[u8]) -> usize {
    s.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

/// The text as bytes: UTF-8, with surrogate escapes `U+DC80..U+DCFF` as the bytes they
/// stand for (Python's `encode('utf-8', 'surrogateescape')`) and any other lone
/// surrogate as U+FFFD.
fn text_to_bytes(s: &[u8]) -> Vec<u8> {
    if !has_surrogates(s) {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == 0xED && s.get(i + 1).is_some_and(|&b| b >= 0xA0) {
            let (cp, len) = cp_at(s, i);
            if (0xDC80..=0xDCFF).contains(&cp) {
                out.push((cp - 0xDC00) as u8);
            } else {
                out.extend_from_slice("\u{FFFD}".as_bytes());
            }
            i += len;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// The text as a Rust string, lone surrogates as U+FFFD.
fn text_lossy(s: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for (_, cp, _) in code_points(s) {
        out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
    }
    out
}

/// Bytes as the email package turns them into text: ASCII as is, other bytes as their
/// surrogate escapes (`bytes.decode('ascii', 'surrogateescape')`).
fn surrogateescape_decode(bytes: &[u8]) -> Text {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 2);
    for &b in bytes {
        if b < 0x80 {
            out.push(b);
        } else {
            push_cp(&mut out, 0xDC00 + b as u32);
        }
    }
    out
}

/// Python's `str.isspace()` for one character.
fn py_isspace(cp: u32) -> bool {
    matches!(
        cp,
        0x09..=0x0D | 0x1C..=0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029
            | 0x202F | 0x205F | 0x3000
    )
}

fn py_isspace_str(s: &[u8]) -> bool {
    !s.is_empty() && code_points(s).all(|(_, cp, _)| py_isspace(cp))
}

/// Python's `str.lstrip()`.
fn py_lstrip(s: &[u8]) -> &[u8] {
    for (i, cp, _) in code_points(s) {
        if !py_isspace(cp) {
            return &s[i..];
        }
    }
    &s[s.len()..]
}

/// Python's `str.splitlines()` (without the line ends).
fn py_splitlines(s: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let (cp, len) = cp_at(s, i);
        if matches!(
            cp,
            0x0A | 0x0B | 0x0C | 0x0D | 0x1C | 0x1D | 0x1E | 0x85 | 0x2028 | 0x2029
        ) {
            out.push(&s[start..i]);
            let mut end = i + len;
            if cp == 0x0D && s.get(end) == Some(&b'\n') {
                end += 1;
            }
            start = end;
            i = end;
        } else {
            i += len;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Python's `str.strip()` on a Rust string.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| py_isspace(c as u32))
}

fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(|c: char| py_isspace(c as u32))
}

/// Decodes protocol 0's `raw-unicode-escape`: `\uXXXX` and `\UXXXXXXXX` escapes (after
/// an even run of backslashes), every other byte a Latin-1 character.
fn raw_unicode_escape_decode(s: &[u8]) -> std::result::Result<Text, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' || i >= s.len() {
            push_cp(&mut out, c as u32);
            continue;
        }
        let n = match s[i] {
            b'u' => 4,
            b'U' => 8,
            other => {
                out.push(b'\\');
                push_cp(&mut out, other as u32);
                i += 1;
                continue;
            }
        };
        i += 1;
        let hex = s.get(i..i + n).ok_or("truncated \\u escape in UNICODE")?;
        let hex = std::str::from_utf8(hex).map_err(|_| "bad \\u escape in UNICODE")?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("truncated \\u escape in UNICODE");
        }
        let cp = u32::from_str_radix(hex, 16).map_err(|_| "bad \\u escape in UNICODE")?;
        if cp > 0x10FFFF {
            return Err("\\U escape out of range in UNICODE");
        }
        push_cp(&mut out, cp);
        i += n;
    }
    Ok(out)
}

/// Decodes the body of a protocol 0 `STRING` (Python's `codecs.escape_decode`).
fn escape_decode(s: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err("trailing backslash in STRING");
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex = s.get(i..i + 2).ok_or("truncated \\x escape in STRING")?;
                let h = std::str::from_utf8(hex)
                    .ok()
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("invalid \\x escape in STRING")?;
                out.push(h);
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

fn latin1_text(bytes: &[u8]) -> Text {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        push_cp(&mut out, b as u32);
    }
    out
}

// =======================================================================================
// Integers

/// A decimal integer (optional sign, digits, surrounding whitespace) as a value.
fn parse_decimal(text: &[u8]) -> Option<Obj> {
    let text = std::str::from_utf8(text).ok()?.trim();
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(Obj::Int(0));
    }
    if digits.len() > MAX_INT_DIGITS {
        return None;
    }
    let signed = if neg {
        format!("-{digits}")
    } else {
        digits.to_string()
    };
    Some(match signed.parse::<i128>() {
        Ok(i) => Obj::Int(i),
        Err(_) => Obj::BigInt(signed),
    })
}

/// A little-endian two's complement integer (`LONG1`/`LONG4`).
fn long_from_le(bytes: &[u8]) -> std::result::Result<Obj, &'static str> {
    let Some(&last) = bytes.last() else {
        return Ok(Obj::Int(0));
    };
    let neg = last & 0x80 != 0;
    if bytes.len() <= 16 {
        let mut buf = [if neg { 0xFF } else { 0 }; 16];
        buf[..bytes.len()].copy_from_slice(bytes);
        return Ok(Obj::Int(i128::from_le_bytes(buf)));
    }
    // 4300 decimal digits need at most 1786 bytes.
    if bytes.len() > 1800 {
        return Err("integer longer than 4300 digits");
    }
    let mut mag = bytes.to_vec();
    if neg {
        let mut carry = true;
        for b in &mut mag {
            *b = !*b;
            if carry {
                let (v, c) = b.overflowing_add(1);
                *b = v;
                carry = c;
            }
        }
    }
    // Little-endian base 2^32 limbs, then repeated division by 10^9.
    let mut limbs: Vec<u32> = mag
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    let mut groups = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for l in limbs.iter_mut().rev() {
            let cur = rem << 32 | *l as u64;
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        groups.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut digits = String::new();
    if neg {
        digits.push('-');
    }
    for (i, g) in groups.iter().rev().enumerate() {
        if i == 0 {
            digits.push_str(&g.to_string());
        } else {
            digits.push_str(&format!("{g:09}"));
        }
    }
    if digits.trim_start_matches('-').len() > MAX_INT_DIGITS {
        return Err("integer longer than 4300 digits");
    }
    Ok(match digits.parse::<i128>() {
        Ok(i) => Obj::Int(i),
        Err(_) => Obj::BigInt(digits),
    })
}

/// Decimal digits (optional `-`) as minimal little-endian two's complement bytes.
fn decimal_to_le(digits: &str) -> Option<Vec<u8>> {
    let (neg, body) = match digits.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, digits),
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut limbs: Vec<u32> = vec![0];
    for chunk in body.as_bytes().chunks(9) {
        let mul = 10u64.pow(chunk.len() as u32);
        let mut carry: u64 = std::str::from_utf8(chunk).ok()?.parse().ok()?;
        for l in &mut limbs {
            let cur = *l as u64 * mul + carry;
            *l = cur as u32;
            carry = cur >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    while bytes.len() > 1 && bytes.last() == Some(&0) {
        bytes.pop();
    }
    // Room for the sign bit.
    if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
        bytes.push(0);
    }
    if neg {
        let mut carry = true;
        for b in &mut bytes {
            *b = !*b;
            if carry {
                let (v, c) = b.overflowing_add(1);
                *b = v;
                carry = c;
            }
        }
        // -2^(8n-1) needs no extra 0xFF byte.
        while bytes.len() > 1
            && bytes[bytes.len() - 1] == 0xFF
            && bytes[bytes.len() - 2] & 0x80 != 0
        {
            bytes.pop();
        }
    }
    Some(bytes)
}

fn i128_to_le(i: i128) -> Vec<u8> {
    let mut bytes = i.to_le_bytes().to_vec();
    while bytes.len() > 1 {
        let last = bytes[bytes.len() - 1];
        let prev_sign = bytes[bytes.len() - 2] & 0x80;
        if (last == 0 && prev_sign == 0) || (last == 0xFF && prev_sign != 0) {
            bytes.pop();
        } else {
            break;
        }
    }
    bytes
}

// =======================================================================================
// The pickle machine

type Id = usize;

/// What an allowed global stands for. Nothing is ever imported: this is all there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A message class (`mailman.email.message.Message`, `email.mime.text.MIMEText`, ...).
    Message,
    /// A policy (`email._policybase.Compat32`, `email.policy.EmailPolicy`).
    Policy,
    /// `email.charset.Charset`.
    Charset,
    /// `email.header.Header`.
    Header,
    /// `email.errors.*Defect`, in a message's `defects` list.
    Defect,
    /// `copyreg._reconstructor`, protocols 0 and 1 spelling of "a new instance of".
    Reconstructor,
    /// `builtins.set`.
    SetType,
    /// `builtins.frozenset`.
    FrozenSetType,
    /// `builtins.bytes`.
    BytesType,
    /// `builtins.bytearray`.
    ByteArrayType,
    /// `_codecs.encode`, protocols 0 to 2 spelling of bytes.
    CodecsEncode,
    /// `builtins.object`, only as `copyreg._reconstructor`'s base.
    ObjectType,
}

impl Kind {
    /// Classes whose instances are kept as inert attribute records.
    fn is_class(self) -> bool {
        matches!(
            self,
            Kind::Message | Kind::Policy | Kind::Charset | Kind::Header | Kind::Defect
        )
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The allow-list. `proto` < 3 applies Python's `fix_imports` renames.
fn allowed_global(module: &str, name: &str, proto: u8) -> Option<Kind> {
    let module = match module {
        "copy_reg" if proto < 3 => "copyreg",
        "__builtin__" if proto < 3 => "builtins",
        m => m,
    };
    Some(match (module, name) {
        ("copyreg", "_reconstructor") => Kind::Reconstructor,
        ("builtins", "set") => Kind::SetType,
        ("builtins", "frozenset") => Kind::FrozenSetType,
        ("builtins", "bytes") => Kind::BytesType,
        ("builtins", "bytearray") => Kind::ByteArrayType,
        ("builtins", "object") => Kind::ObjectType,
        ("_codecs", "encode") => Kind::CodecsEncode,
        ("email._policybase", "Compat32")
        | ("email.policy", "Compat32")
        | ("email.policy", "EmailPolicy") => Kind::Policy,
        ("email.charset", "Charset") => Kind::Charset,
        ("email.header", "Header") => Kind::Header,
        ("email.errors", n) if n.ends_with("Defect") && is_identifier(n) => Kind::Defect,
        ("email.message", "Message" | "EmailMessage" | "MIMEPart")
        | ("email.mime.base", "MIMEBase")
        | ("email.mime.nonmultipart", "MIMENonMultipart")
        | ("email.mime.multipart", "MIMEMultipart")
        | ("email.mime.text", "MIMEText")
        | ("email.mime.image", "MIMEImage")
        | ("email.mime.audio", "MIMEAudio")
        | ("email.mime.application", "MIMEApplication")
        | ("email.mime.message", "MIMEMessage") => Kind::Message,
        ("mailman.email.message", n)
            if is_identifier(n) && (n.ends_with("Message") || n.ends_with("Notification")) =>
        {
            Kind::Message
        }
        _ => return None,
    })
}

/// One Python object, as data. Containers refer to other objects by arena index, so
/// sharing and cycles are just indices.
#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i128),
    BigInt(String),
    Float(f64),
    Str(Text),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// An allowed global: a name, never a live object.
    Global {
        kind: Kind,
        name: String,
    },
    /// An instance of an allowed class: its attributes (`__dict__`), nothing more.
    Instance {
        class: Id,
        attrs: Vec<(Text, Id)>,
    },
}

/// The objects of one loaded pickle and the index of its result.
struct Loaded {
    objs: Vec<Obj>,
    root: Id,
    /// Where the pickle ended (just after `STOP`).
    end: usize,
    what: &'static str,
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    proto: u8,
    /// What the emulated calls may still copy (they copy values a memo can share).
    work_left: usize,
}

/// Runs one pickle starting at `start`.
fn load(data: &[u8], start: usize, what: &'static str) -> Result<Loaded> {
    let mut m = Machine {
        data,
        pos: start,
        what,
        objs: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        proto: 0,
        work_left: output_budget(data.len()),
    };
    let root = m.run()?;
    Ok(Loaded {
        objs: m.objs,
        root,
        end: m.pos,
        what,
    })
}

const DAMAGED_HINT: &str = "the file is damaged or not a Mailman queue file; `python3 -m pickletools FILE` lists its opcodes";

fn printable(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    let mut out: String = s.chars().take(120).flat_map(char::escape_debug).collect();
    if s.chars().count() > 120 {
        out.push_str("...");
    }
    out
}

impl<'a> Machine<'a> {
    fn err(&self, at: usize, msg: impl std::fmt::Display) -> Error {
        Error::data(
            format!(
                "Mailman queue file: {} pickle: {msg} (at byte {at})",
                self.what
            ),
            DAMAGED_HINT,
        )
    }

    fn refuse_global(&self, at: usize, module: &[u8], name: &[u8]) -> Error {
        Error::data(
            format!(
                "Mailman queue file: {} pickle refers to {}.{}, which is not plain data or an \
                 email message class: refused, nothing was loaded or run (at byte {at})",
                self.what,
                printable(module),
                printable(name)
            ),
            "qtool reads only plain values and email message objects from Mailman pickles; \
             inspect the file with `python3 -m pickletools FILE`",
        )
    }

    /// Accounts for copying `units` (bytes, or 8 per item) in an emulated call.
    fn charge(&mut self, units: usize, at: usize) -> Result<()> {
        if units > self.work_left {
            return Err(self.err(
                at,
                "the pickle expands to too much data (shared references?); refused",
            ));
        }
        self.work_left -= units;
        Ok(())
    }

    fn add(&mut self, obj: Obj) -> Id {
        self.objs.push(obj);
        self.objs.len() - 1
    }

    fn push(&mut self, obj: Obj) {
        let id = self.add(obj);
        self.stack.push(id);
    }

    fn take(&mut self, n: u64, at: usize) -> Result<&'a [u8]> {
        let remaining = (self.data.len() - self.pos) as u64;
        if n > remaining {
            return Err(self.err(
                at,
                format!("needs {n} bytes but only {remaining} remain (truncated?)"),
            ));
        }
        let data: &'a [u8] = self.data;
        let start = self.pos;
        self.pos += n as usize;
        Ok(&data[start..self.pos])
    }

    fn u8(&mut self, at: usize) -> Result<u8> {
        Ok(self.take(1, at)?[0])
    }

    fn u16(&mut self, at: usize) -> Result<u16> {
        let b = self.take(2, at)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, at: usize) -> Result<u32> {
        let b = self.take(4, at)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, at: usize) -> Result<i32> {
        Ok(self.u32(at)? as i32)
    }

    fn u64(&mut self, at: usize) -> Result<u64> {
        let b = self.take(8, at)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    /// A `\n`-terminated argument, without the `\n`.
    fn line(&mut self, at: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err(at, "argument line is not terminated (truncated?)"));
        };
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self, at: usize) -> Result<Id> {
        if self.stack.len() <= self.fence() {
            return Err(self.err(at, "stack underflow"));
        }
        Ok(self.stack.pop().unwrap_or_default())
    }

    fn top(&self, at: usize) -> Result<Id> {
        if self.stack.len() <= self.fence() {
            return Err(self.err(at, "stack underflow"));
        }
        Ok(self.stack[self.stack.len() - 1])
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.err(at, "no MARK to pop to"));
        };
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn pop_n(&mut self, n: usize, at: usize) -> Result<Vec<Id>> {
        if self.stack.len() < self.fence() + n {
            return Err(self.err(at, "stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn text(&self, id: Id) -> Option<&[u8]> {
        match &self.objs[id] {
            Obj::Str(t) => Some(t),
            _ => None,
        }
    }

    fn memo_get(&mut self, key: u64, at: usize) -> Result<()> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(id);
                Ok(())
            }
            None => Err(self.err(at, format!("memo has no entry {key}"))),
        }
    }

    fn memo_put(&mut self, key: u64, at: usize) -> Result<()> {
        let top = self.top(at)?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn line_index(&mut self, at: usize) -> Result<u64> {
        let line = self.line(at)?;
        let parsed = std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        parsed.ok_or_else(|| self.err(at, "memo index is not a non-negative integer"))
    }

    fn global(&mut self, module: &[u8], name: &[u8], at: usize) -> Result<()> {
        let kind = match (std::str::from_utf8(module), std::str::from_utf8(name)) {
            (Ok(m), Ok(n)) => allowed_global(m, n, self.proto),
            _ => None,
        };
        let Some(kind) = kind else {
            return Err(self.refuse_global(at, module, name));
        };
        let name = format!(
            "{}.{}",
            String::from_utf8_lossy(module),
            String::from_utf8_lossy(name)
        );
        self.push(Obj::Global { kind, name });
        Ok(())
    }

    fn type_name(&self, id: Id) -> String {
        type_name(&self.objs, id)
    }

    /// A new inert instance of the class `cls` (NEWOBJ, INST, OBJ, _reconstructor).
    fn instantiate(&mut self, cls: Id, at: usize, how: &str) -> Result<Id> {
        if matches!(self.objs[cls], Obj::Global { kind, .. } if kind.is_class()) {
            return Ok(self.add(Obj::Instance {
                class: cls,
                attrs: Vec::new(),
            }));
        }
        Err(self.err(
            at,
            format!("{how} of {} is not supported", self.type_name(cls)),
        ))
    }

    fn items_of(&mut self, id: Id, at: usize, what: &str) -> Result<Vec<Id>> {
        let n = match &self.objs[id] {
            Obj::List(v) | Obj::Tuple(v) | Obj::Set(v) => v.len(),
            Obj::Dict(pairs) => pairs.len(),
            _ => {
                return Err(self.err(
                    at,
                    format!("{what} of a {} is not supported", self.type_name(id)),
                ))
            }
        };
        self.charge(n.saturating_mul(8), at)?;
        Ok(match &self.objs[id] {
            Obj::List(v) | Obj::Tuple(v) | Obj::Set(v) => v.clone(),
            Obj::Dict(pairs) => pairs.iter().map(|p| p.0).collect(),
            _ => Vec::new(),
        })
    }

    /// `str.encode(encoding)` for the few encodings pickles use to spell bytes.
    fn encode_str(&self, text: &[u8], encoding: &str, at: usize) -> Result<Vec<u8>> {
        if encoding.len() > 64 {
            return Err(self.err(at, "encoding name too long"));
        }
        let enc = encoding.to_ascii_lowercase().replace('_', "-");
        let mut out = Vec::with_capacity(text.len());
        match enc.as_str() {
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => {
                for (_, cp, _) in code_points(text) {
                    if cp > 0xFF {
                        return Err(self.err(at, "text does not encode as latin-1"));
                    }
                    out.push(cp as u8);
                }
            }
            "ascii" | "us-ascii" => {
                if !text.is_ascii() {
                    return Err(self.err(at, "text does not encode as ASCII"));
                }
                out.extend_from_slice(text);
            }
            "utf-8" | "utf8" => {
                if has_surrogates(text) {
                    return Err(self.err(at, "text with surrogates does not encode as UTF-8"));
                }
                out.extend_from_slice(text);
            }
            _ => {
                return Err(self.err(
                    at,
                    format!(
                        "encoding {} is not supported",
                        printable(encoding.as_bytes())
                    ),
                ))
            }
        }
        Ok(out)
    }

    /// REDUCE: the emulation of the allowed callables.
    fn reduce(&mut self, func: Id, args: Id, at: usize) -> Result<Id> {
        let Obj::Global { kind, .. } = self.objs[func] else {
            return Err(self.err(
                at,
                format!(
                    "REDUCE calls a {}, which is not callable",
                    self.type_name(func)
                ),
            ));
        };
        let Obj::Tuple(args) = &self.objs[args] else {
            return Err(self.err(at, "REDUCE arguments are not a tuple"));
        };
        if args.len() > 3 {
            return Err(self.err(at, "REDUCE with more than three arguments is not supported"));
        }
        let args = args.clone();
        match kind {
            k if k.is_class() => self.instantiate(func, at, "REDUCE"),
            Kind::Reconstructor => {
                // copyreg._reconstructor(cls, object, None): object.__new__(cls).
                let ok = args.len() == 3
                    && matches!(
                        self.objs[args[1]],
                        Obj::Global {
                            kind: Kind::ObjectType,
                            ..
                        }
                    )
                    && matches!(self.objs[args[2]], Obj::None);
                if !ok {
                    return Err(self.err(
                        at,
                        "copyreg._reconstructor is supported only as (class, object, None)",
                    ));
                }
                self.instantiate(args[0], at, "copyreg._reconstructor")
            }
            Kind::SetType | Kind::FrozenSetType => {
                let items = match args.as_slice() {
                    [] => Vec::new(),
                    [it] => self.items_of(*it, at, "set()")?,
                    _ => return Err(self.err(at, "set() takes at most one argument")),
                };
                Ok(self.add(Obj::Set(items)))
            }
            Kind::BytesType | Kind::ByteArrayType => {
                if let [one] = args.as_slice() {
                    let n = match &self.objs[*one] {
                        Obj::Bytes(b) => b.len(),
                        Obj::List(v) | Obj::Tuple(v) => v.len(),
                        _ => 0,
                    };
                    self.charge(n, at)?;
                }
                let bytes = match args.as_slice() {
                    [] => Vec::new(),
                    [one] => match &self.objs[*one] {
                        Obj::Bytes(b) => b.clone(),
                        Obj::List(v) | Obj::Tuple(v) => {
                            let mut out = Vec::with_capacity(v.len());
                            for &i in v {
                                match self.objs[i] {
                                    Obj::Int(n @ 0..=255) => out.push(n as u8),
                                    _ => return Err(self.err(at, "bytes() of a non-byte item")),
                                }
                            }
                            out
                        }
                        _ => {
                            return Err(self.err(
                                at,
                                format!("bytes() of a {} is not supported", self.type_name(*one)),
                            ))
                        }
                    },
                    [s, enc, ..] if args.len() <= 3 => {
                        let (Some(s), Some(enc)) = (self.text(*s), self.text(*enc)) else {
                            return Err(self.err(at, "bytes(str, encoding) needs text arguments"));
                        };
                        let out = self.encode_str(s, &text_lossy(enc), at)?;
                        self.charge(out.len(), at)?;
                        out
                    }
                    _ => return Err(self.err(at, "bytes() takes at most three arguments")),
                };
                Ok(self.add(Obj::Bytes(bytes)))
            }
            Kind::CodecsEncode => {
                let (s, enc) = match args.as_slice() {
                    [s] => (self.text(*s), Some(&b"utf-8"[..])),
                    [s, enc] | [s, enc, _] => (self.text(*s), self.text(*enc)),
                    _ => (None, None),
                };
                let (Some(s), Some(enc)) = (s, enc) else {
                    return Err(self.err(at, "_codecs.encode needs (str, encoding)"));
                };
                let bytes = self.encode_str(s, &text_lossy(enc), at)?;
                self.charge(bytes.len(), at)?;
                Ok(self.add(Obj::Bytes(bytes)))
            }
            _ => Err(self.err(
                at,
                format!("calling {} is not supported", self.type_name(func)),
            )),
        }
    }

    /// BUILD: sets the attributes of an inert instance from its state (a dict, or a
    /// `(dict, slots dict)` pair, either possibly None). Nothing is called.
    fn build(&mut self, inst: Id, state: Id, at: usize) -> Result<()> {
        if !matches!(self.objs[inst], Obj::Instance { .. }) {
            return Err(self.err(
                at,
                format!("BUILD of a {} is not supported", self.type_name(inst)),
            ));
        }
        let parts = match &self.objs[state] {
            Obj::Tuple(v) if v.len() == 2 => v.clone(),
            _ => vec![state],
        };
        let mut cost = 0usize;
        for &part in &parts {
            if let Obj::Dict(pairs) = &self.objs[part] {
                for &(k, _) in pairs {
                    cost = cost.saturating_add(self.text(k).map_or(0, <[u8]>::len) + 16);
                }
            }
        }
        self.charge(cost, at)?;
        let mut new_attrs: Vec<(Text, Id)> = Vec::new();
        for part in parts {
            match &self.objs[part] {
                Obj::None => {}
                Obj::Dict(pairs) => {
                    for &(k, v) in pairs {
                        let Some(key) = self.text(k) else {
                            return Err(self.err(at, "attribute name is not a string"));
                        };
                        new_attrs.push((key.to_vec(), v));
                    }
                }
                _ => {
                    return Err(self.err(
                        at,
                        format!("BUILD state is a {}, not a dict", self.type_name(part)),
                    ))
                }
            }
        }
        if let Obj::Instance { attrs, .. } = &mut self.objs[inst] {
            let mut index: HashMap<Text, usize> = attrs
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            for (k, v) in new_attrs {
                match index.get(&k) {
                    Some(&i) => attrs[i].1 = v,
                    None => {
                        index.insert(k.clone(), attrs.len());
                        attrs.push((k, v));
                    }
                }
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Id> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(self.pos) else {
                return Err(self.err(at, "pickle ends without STOP (truncated?)"));
            };
            self.pos += 1;
            match op {
                // MARK
                b'(' => self.marks.push(self.stack.len()),
                // STOP
                b'.' => return self.pop(at),
                // POP: the top item, or the top mark when nothing is above it.
                b'0' => {
                    if self.stack.len() > self.fence() {
                        self.stack.pop();
                    } else if self.marks.pop().is_none() {
                        return Err(self.err(at, "stack underflow"));
                    }
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark(at)?;
                }
                // DUP
                b'2' => {
                    let top = self.top(at)?;
                    self.stack.push(top);
                }
                // FLOAT
                b'F' => {
                    let line = self.line(at)?;
                    let f = std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok());
                    let Some(f) = f else {
                        return Err(self.err(at, "FLOAT argument is not a number"));
                    };
                    self.push(Obj::Float(f));
                }
                // BINFLOAT
                b'G' => {
                    let b = self.take(8, at)?;
                    let mut w = [0u8; 8];
                    w.copy_from_slice(b);
                    self.push(Obj::Float(f64::from_be_bytes(w)));
                }
                // INT: also the protocol 0 booleans 00 and 01.
                b'I' => {
                    let line = self.line(at)?;
                    let obj = match line {
                        b"00" => Some(Obj::Bool(false)),
                        b"01" => Some(Obj::Bool(true)),
                        _ => parse_decimal(line),
                    };
                    let Some(obj) = obj else {
                        return Err(self.err(at, "INT argument is not a decimal integer"));
                    };
                    self.push(obj);
                }
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = self.i32(at)?;
                    self.push(Obj::Int(v as i128));
                }
                b'K' => {
                    let v = self.u8(at)?;
                    self.push(Obj::Int(v as i128));
                }
                b'M' => {
                    let v = self.u16(at)?;
                    self.push(Obj::Int(v as i128));
                }
                // LONG
                b'L' => {
                    let line = self.line(at)?;
                    let line = line.strip_suffix(b"L").unwrap_or(line);
                    let Some(obj) = parse_decimal(line) else {
                        return Err(self.err(
                            at,
                            "LONG argument is not a decimal integer of at most 4300 digits",
                        ));
                    };
                    self.push(obj);
                }
                // LONG1, LONG4
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8(at)? as u64
                    } else {
                        let n = self.i32(at)?;
                        if n < 0 {
                            return Err(self.err(at, "negative LONG4 length"));
                        }
                        n as u64
                    };
                    let bytes = self.take(n, at)?;
                    let obj = long_from_le(bytes).map_err(|e| self.err(at, e))?;
                    self.push(obj);
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                // STRING: a quoted, escaped Python 2 str. Python 3 decodes it as ASCII;
                // qtool reads other bytes as Latin-1 rather than fail.
                b'S' => {
                    let line = self.line(at)?;
                    let quoted = line.len() >= 2
                        && line[0] == line[line.len() - 1]
                        && (line[0] == b'\'' || line[0] == b'"');
                    if !quoted {
                        return Err(self.err(at, "STRING argument is not quoted"));
                    }
                    let body = &line[1..line.len() - 1];
                    let bytes = escape_decode(body).map_err(|e| self.err(at, e))?;
                    self.push(Obj::Str(latin1_text(&bytes)));
                }
                // BINSTRING, SHORT_BINSTRING
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = self.i32(at)?;
                        if n < 0 {
                            return Err(self.err(at, "negative BINSTRING length"));
                        }
                        n as u64
                    } else {
                        self.u8(at)? as u64
                    };
                    let text = latin1_text(self.take(n, at)?);
                    self.push(Obj::Str(text));
                }
                // UNICODE
                b'V' => {
                    let line = self.line(at)?;
                    let text = raw_unicode_escape_decode(line).map_err(|e| self.err(at, e))?;
                    self.push(Obj::Str(text));
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32(at)? as u64,
                        0x8c => self.u8(at)? as u64,
                        _ => self.u64(at)?,
                    };
                    let bytes = self.take(n, at)?;
                    if !valid_text(bytes) {
                        return Err(self.err(at, "text is not valid UTF-8"));
                    }
                    self.push(Obj::Str(bytes.to_vec()));
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32(at)? as u64,
                        b'C' => self.u8(at)? as u64,
                        _ => self.u64(at)?,
                    };
                    let bytes = self.take(n, at)?.to_vec();
                    self.push(Obj::Bytes(bytes));
                }
                // EMPTY_TUPLE, TUPLE, TUPLE1-3
                b')' => self.push(Obj::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let items = self.pop_n((op - 0x84) as usize, at)?;
                    self.push(Obj::Tuple(items));
                }
                // EMPTY_LIST, LIST, APPEND, APPENDS
                b']' => self.push(Obj::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Obj::List(items));
                }
                b'a' => {
                    let value = self.pop(at)?;
                    let list = self.top(at)?;
                    let name = self.type_name(list);
                    match &mut self.objs[list] {
                        Obj::List(items) => items.push(value),
                        _ => return Err(self.err(at, format!("APPEND to a {name}"))),
                    }
                }
                b'e' => {
                    let values = self.pop_mark(at)?;
                    let list = self.top(at)?;
                    let name = self.type_name(list);
                    match &mut self.objs[list] {
                        Obj::List(items) => items.extend(values),
                        _ => return Err(self.err(at, format!("APPENDS to a {name}"))),
                    }
                }
                // EMPTY_DICT, DICT, SETITEM, SETITEMS
                b'}' => self.push(Obj::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(self.err(at, "odd number of items for DICT"));
                    }
                    let pairs = items.chunks(2).map(|p| (p[0], p[1])).collect();
                    self.push(Obj::Dict(pairs));
                }
                b's' => {
                    let value = self.pop(at)?;
                    let key = self.pop(at)?;
                    let dict = self.top(at)?;
                    let name = self.type_name(dict);
                    match &mut self.objs[dict] {
                        Obj::Dict(pairs) => pairs.push((key, value)),
                        _ => return Err(self.err(at, format!("SETITEM on a {name}"))),
                    }
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(self.err(at, "odd number of items for SETITEMS"));
                    }
                    let dict = self.top(at)?;
                    let name = self.type_name(dict);
                    match &mut self.objs[dict] {
                        Obj::Dict(pairs) => pairs.extend(items.chunks(2).map(|p| (p[0], p[1]))),
                        _ => return Err(self.err(at, format!("SETITEMS on a {name}"))),
                    }
                }
                // EMPTY_SET, ADDITEMS, FROZENSET (kept as lists of their items)
                0x8f => self.push(Obj::Set(Vec::new())),
                0x90 => {
                    let values = self.pop_mark(at)?;
                    let set = self.top(at)?;
                    let name = self.type_name(set);
                    match &mut self.objs[set] {
                        Obj::Set(items) => items.extend(values),
                        _ => return Err(self.err(at, format!("ADDITEMS to a {name}"))),
                    }
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Obj::Set(items));
                }
                // GET, BINGET, LONG_BINGET
                b'g' => {
                    let key = self.line_index(at)?;
                    self.memo_get(key, at)?;
                }
                b'h' => {
                    let key = self.u8(at)? as u64;
                    self.memo_get(key, at)?;
                }
                b'j' => {
                    let key = self.u32(at)? as u64;
                    self.memo_get(key, at)?;
                }
                // PUT, BINPUT, LONG_BINPUT, MEMOIZE
                b'p' => {
                    let key = self.line_index(at)?;
                    self.memo_put(key, at)?;
                }
                b'q' => {
                    let key = self.u8(at)? as u64;
                    self.memo_put(key, at)?;
                }
                b'r' => {
                    let key = self.u32(at)? as u64;
                    self.memo_put(key, at)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key, at)?;
                }
                // GLOBAL, STACK_GLOBAL: checked against the allow-list, never imported.
                b'c' => {
                    let module = self.line(at)?.to_vec();
                    let name = self.line(at)?.to_vec();
                    self.global(&module, &name, at)?;
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Some(m), Some(n)) = (self.text(module), self.text(name)) else {
                        return Err(self.err(at, "STACK_GLOBAL needs two strings"));
                    };
                    let (m, n) = (m.to_vec(), n.to_vec());
                    self.global(&m, &n, at)?;
                }
                // REDUCE, NEWOBJ, NEWOBJ_EX, BUILD, INST, OBJ: emulated, never called.
                b'R' => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    let id = self.reduce(func, args, at)?;
                    self.stack.push(id);
                }
                0x81 => {
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    if !matches!(self.objs[args], Obj::Tuple(_)) {
                        return Err(self.err(at, "NEWOBJ arguments are not a tuple"));
                    }
                    let id = self.instantiate(cls, at, "NEWOBJ")?;
                    self.stack.push(id);
                }
                0x92 => {
                    let _kwargs = self.pop(at)?;
                    let _args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    let id = self.instantiate(cls, at, "NEWOBJ_EX")?;
                    self.stack.push(id);
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let inst = self.top(at)?;
                    self.build(inst, state, at)?;
                }
                b'i' => {
                    let module = self.line(at)?.to_vec();
                    let name = self.line(at)?.to_vec();
                    self.global(&module, &name, at)?;
                    let cls = self.stack.pop().unwrap_or_default();
                    let _args = self.pop_mark(at)?;
                    let id = self.instantiate(cls, at, "INST")?;
                    self.stack.push(id);
                }
                b'o' => {
                    let items = self.pop_mark(at)?;
                    let Some(&cls) = items.first() else {
                        return Err(self.err(at, "OBJ without a class"));
                    };
                    let id = self.instantiate(cls, at, "OBJ")?;
                    self.stack.push(id);
                }
                // FRAME: a length prefix; the frame must be complete.
                0x95 => {
                    let n = self.u64(at)?;
                    let remaining = (self.data.len() - self.pos) as u64;
                    if n > remaining {
                        return Err(self.err(
                            at,
                            format!("frame of {n} bytes but only {remaining} remain (truncated)"),
                        ));
                    }
                }
                // PROTO
                0x80 => {
                    let v = self.u8(at)?;
                    if v > HIGHEST_PROTOCOL {
                        return Err(self.err(at, format!("unsupported pickle protocol {v}")));
                    }
                    self.proto = v;
                }
                // READONLY_BUFFER: no-op on the bytes on the stack.
                0x98 => {
                    self.top(at)?;
                }
                b'P' | b'Q' => {
                    return Err(self.err(
                        at,
                        "persistent id (PERSID/BINPERSID) refused: Mailman never writes one",
                    ))
                }
                0x82..=0x84 => return Err(self.err(
                    at,
                    "extension code (EXT1/EXT2/EXT4) refused: it names a global qtool cannot check",
                )),
                0x97 => return Err(self.err(at, "out-of-band buffer (NEXT_BUFFER) refused")),
                other => return Err(self.err(at, format!("unknown opcode 0x{other:02x}"))),
            }
        }
    }
}

fn type_name(objs: &[Obj], id: Id) -> String {
    match &objs[id] {
        Obj::None => "None".into(),
        Obj::Bool(_) => "bool".into(),
        Obj::Int(_) | Obj::BigInt(_) => "int".into(),
        Obj::Float(_) => "float".into(),
        Obj::Str(_) => "str".into(),
        Obj::Bytes(_) => "bytes".into(),
        Obj::List(_) => "list".into(),
        Obj::Tuple(_) => "tuple".into(),
        Obj::Dict(_) => "dict".into(),
        Obj::Set(_) => "set".into(),
        Obj::Global { name, .. } => name.clone(),
        Obj::Instance { class, .. } => match &objs[*class] {
            Obj::Global { name, .. } => format!("{name} object"),
            _ => "object".into(),
        },
    }
}

// =======================================================================================
// Objects to values

/// The most output (message bytes, or metadata values and text) one file may expand to:
/// generous for real files, small enough that shared references cannot blow up.
fn output_budget(input_len: usize) -> usize {
    input_len.saturating_mul(4).saturating_add(64 << 20)
}

struct Converter<'a> {
    l: &'a Loaded,
    left: usize,
}

/// What one value costs the budget besides its text: about its size in memory.
const NODE_COST: usize = 32;

impl Converter<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::data(
            format!("Mailman queue file: {} pickle: {msg}", self.l.what),
            DAMAGED_HINT,
        )
    }

    fn spend(&mut self, n: usize) -> Result<()> {
        if n + NODE_COST > self.left {
            return Err(
                self.err("the values expand to too much data (shared references?); refused")
            );
        }
        self.left -= n + NODE_COST;
        Ok(())
    }

    fn value(&mut self, id: Id, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(Error::data(
                format!(
                    "Mailman queue file: metadata nests deeper than {MAX_DEPTH} levels (or contains itself)"
                ),
                "flatten the metadata",
            ));
        }
        let l: &Loaded = self.l;
        let objs = &l.objs;
        self.spend(0)?;
        Ok(match &objs[id] {
            Obj::None => Value::None,
            Obj::Bool(b) => Value::Bool(*b),
            Obj::Int(i) => Value::Int(*i),
            Obj::BigInt(d) => Value::BigInt(d.clone()),
            Obj::Float(f) => Value::Float(*f),
            Obj::Str(t) => {
                self.spend(t.len())?;
                Value::Str(text_lossy(t))
            }
            Obj::Bytes(b) => {
                self.spend(b.len())?;
                Value::Bytes(b.clone())
            }
            Obj::List(items) => Value::List(self.values(items, depth)?),
            Obj::Tuple(items) => Value::Tuple(self.values(items, depth)?),
            Obj::Set(items) => {
                let mut out: Vec<Value> = Vec::new();
                let mut seen = HashMap::new();
                for v in self.values(items, depth)? {
                    let key = self.hash_key(&v)?;
                    if seen.insert(key, ()).is_none() {
                        out.push(v);
                    }
                }
                Value::List(out)
            }
            Obj::Dict(pairs) => {
                let mut out: Vec<(Value, Value)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                for &(k, v) in pairs {
                    let key = self.value(k, depth + 1)?;
                    let value = self.value(v, depth + 1)?;
                    match index.get(&self.hash_key(&key)?) {
                        Some(&at) => out[at].1 = value,
                        None => {
                            index.insert(self.hash_key(&key)?, out.len());
                            out.push((key, value));
                        }
                    }
                }
                Value::Dict(out)
            }
            Obj::Global { .. } | Obj::Instance { .. } => {
                return Err(self.err(format!(
                    "the metadata holds something that is not plain data: {}",
                    type_name(objs, id)
                )))
            }
        })
    }

    fn values(&mut self, items: &[Id], depth: usize) -> Result<Vec<Value>> {
        items.iter().map(|&i| self.value(i, depth + 1)).collect()
    }

    /// A string equal for values Python's dict and set treat as the same key
    /// (`1 == 1.0 == True`); an error for unhashable values.
    fn hash_key(&self, v: &Value) -> Result<String> {
        Ok(match v {
            Value::None => "N".into(),
            Value::Bool(b) => format!("i{}", *b as u8),
            Value::Int(i) => format!("i{i}"),
            Value::BigInt(d) => format!("i{d}"),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e38 => format!("i{}", *f as i128),
            Value::Float(f) => format!("f{}", f.to_bits()),
            Value::Str(s) => format!("s{s}"),
            Value::Bytes(b) => format!("b{b:?}"),
            Value::Tuple(items) => {
                let mut out = String::from("t(");
                for item in items {
                    out.push_str(&self.hash_key(item)?);
                    out.push(',');
                }
                out.push(')');
                out
            }
            Value::List(_) | Value::Dict(_) => {
                return Err(self.err("a list or dict is used as a dict key or set item"))
            }
        })
    }
}

fn metadata_of(l: &Loaded, budget: usize) -> Result<Metadata> {
    let Obj::Dict(pairs) = &l.objs[l.root] else {
        return Err(Error::data(
            format!(
                "Mailman queue file: the metadata pickle holds a {}, not a dict",
                type_name(&l.objs, l.root)
            ),
            DAMAGED_HINT,
        ));
    };
    if pairs.len() > MAX_METADATA_KEYS {
        return Err(Error::data(
            format!(
                "Mailman queue file: the metadata has {} keys, more than the {MAX_METADATA_KEYS} qtool accepts",
                pairs.len()
            ),
            "Mailman metadata holds a few dozen keys; this file is not plausible",
        ));
    }
    let mut conv = Converter { l, left: budget };
    let mut meta = Metadata::new();
    for &(k, v) in pairs {
        let Obj::Str(key) = &l.objs[k] else {
            return Err(Error::data(
                format!(
                    "Mailman queue file: metadata key of type {} is not a string",
                    type_name(&l.objs, k)
                ),
                "metadata keys are strings",
            ));
        };
        let value = conv.value(v, 1)?;
        meta.set(text_lossy(key), value);
    }
    Ok(meta)
}

/// The message pickle's result as bytes: `(bytes, was text, Python length of the text)`.
fn message_of(l: &Loaded, budget: usize) -> Result<(Vec<u8>, bool, Option<usize>)> {
    match &l.objs[l.root] {
        Obj::Str(t) => Ok((text_to_bytes(t), true, Some(char_len(t)))),
        Obj::Bytes(b) => Ok((b.clone(), false, None)),
        Obj::Instance { .. } if is_message(&l.objs, l.root) => {
            let mut r = Renderer::new(l, budget);
            let mut out = Vec::new();
            r.render(&mut out, l.root, 1)?;
            Ok((text_to_bytes(&out), false, None))
        }
        _ => Err(Error::data(
            format!(
                "Mailman queue file: the message pickle holds a {}, not a message",
                type_name(&l.objs, l.root)
            ),
            DAMAGED_HINT,
        )),
    }
}

fn is_message(objs: &[Obj], id: Id) -> bool {
    match &objs[id] {
        Obj::Instance { class, .. } => {
            matches!(
                objs[*class],
                Obj::Global {
                    kind: Kind::Message,
                    ..
                }
            )
        }
        _ => false,
    }
}

fn is_instance_of(objs: &[Obj], id: Id, want: Kind) -> bool {
    match &objs[id] {
        Obj::Instance { class, .. } => {
            matches!(objs[*class], Obj::Global { kind, .. } if kind == want)
        }
        _ => false,
    }
}

// =======================================================================================
// Message text: the email package's Generator (compat32, maxheaderlen=0,
// mangle_from_=False), writing surrogate escapes back as bytes.

/// A charset as `email.charset.Charset` holds it.
#[derive(Debug, Clone)]
struct Cs {
    /// `input_charset`: what `Charset.__eq__` and `str()` compare.
    name: String,
    /// `header_encoding`: None (no encoding), 1 quoted-printable, 2 base64, 3 shortest.
    henc: Option<i128>,
    /// `output_codec or 'us-ascii'`: the label of encoded words and the codec.
    codec: String,
}

impl Cs {
    fn us_ascii() -> Cs {
        Cs {
            name: "us-ascii".into(),
            henc: None,
            codec: "us-ascii".into(),
        }
    }

    fn utf8() -> Cs {
        Cs {
            name: "utf-8".into(),
            henc: Some(3),
            codec: "utf-8".into(),
        }
    }

    fn is_ascii(&self) -> bool {
        self.name == "us-ascii"
    }
}

/// A header value as the renderer sees it: an object, or text `set_boundary` made.
#[derive(Clone, Copy)]
enum HVal<'t> {
    Obj(Id),
    Text(&'t [u8]),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Handler {
    Text,
    Multipart,
    Message,
    DeliveryStatus,
}

fn handler_named(name: &str) -> Option<Handler> {
    Some(match name {
        "text" => Handler::Text,
        "multipart" | "multipart_signed" => Handler::Multipart,
        "message" => Handler::Message,
        "message_delivery_status" => Handler::DeliveryStatus,
        _ => return None,
    })
}

struct Renderer<'a> {
    l: &'a Loaded,
    objs: &'a [Obj],
    nl: Vec<u8>,
    left: usize,
}

impl<'a> Renderer<'a> {
    fn new(l: &'a Loaded, budget: usize) -> Self {
        let mut r = Renderer {
            l,
            objs: &l.objs,
            nl: b"\n".to_vec(),
            left: budget,
        };
        // The top message's policy decides the line separator for every part.
        let sep = r
            .attr(l.root, "policy")
            .and_then(|policy| r.attr(policy, "linesep"))
            .and_then(|s| r.str_of(s));
        if let Some(sep) = sep {
            r.nl = sep.to_vec();
        }
        r
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::data(
            format!("Mailman queue file: {} pickle: {msg}", self.l.what),
            DAMAGED_HINT,
        )
    }

    /// Accounts for work that writes little (many headers, chunks or parts).
    fn charge(&mut self, units: usize) -> Result<()> {
        if units > self.left {
            return Err(
                self.err("the message expands to too much text (shared references?); refused")
            );
        }
        self.left -= units;
        Ok(())
    }

    fn put(&mut self, out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.left {
            return Err(
                self.err("the message expands to too much text (shared references?); refused")
            );
        }
        self.left -= bytes.len();
        out.extend_from_slice(bytes);
        Ok(())
    }

    fn attr(&self, inst: Id, name: &str) -> Option<Id> {
        match &self.objs[inst] {
            Obj::Instance { attrs, .. } => attrs
                .iter()
                .find(|(k, _)| k == name.as_bytes())
                .map(|(_, v)| *v),
            _ => None,
        }
    }

    fn str_of(&self, id: Id) -> Option<&'a [u8]> {
        match &self.objs[id] {
            Obj::Str(t) => Some(t),
            _ => None,
        }
    }

    /// An optional text attribute (`preamble`, `epilogue`): absent and None are None.
    fn opt_text_attr(&self, msg: Id, name: &str) -> Result<Option<&'a [u8]>> {
        match self.attr(msg, name) {
            None => Ok(None),
            Some(id) => match &self.objs[id] {
                Obj::None => Ok(None),
                Obj::Str(t) => Ok(Some(t)),
                _ => Err(self.err(format!(
                    "the message's {name} is a {}, not text",
                    type_name(self.objs, id)
                ))),
            },
        }
    }

    /// The items of list attribute `attr` of `inst` as pairs (empty when it is
    /// missing); `not_list` and `not_pair` are the errors for a bad list or item.
    fn attr_pairs(
        &self,
        inst: Id,
        attr: &str,
        not_list: &str,
        not_pair: &str,
    ) -> Result<Vec<(Id, Id)>> {
        let Some(list) = self.attr(inst, attr) else {
            return Ok(Vec::new());
        };
        let items = match &self.objs[list] {
            Obj::List(v) | Obj::Tuple(v) => v,
            _ => return Err(self.err(not_list)),
        };
        items
            .iter()
            .map(|&item| match &self.objs[item] {
                Obj::List(v) | Obj::Tuple(v) if v.len() == 2 => Ok((v[0], v[1])),
                _ => Err(self.err(not_pair)),
            })
            .collect()
    }

    /// `msg._headers` as (name, value) pairs.
    fn headers(&self, msg: Id) -> Result<Vec<(&'a [u8], HVal<'a>)>> {
        let pairs = self.attr_pairs(
            msg,
            "_headers",
            "the message's _headers is not a list",
            "a header is not a (name, value) pair",
        )?;
        pairs
            .into_iter()
            .map(|(name, value)| match self.str_of(name) {
                Some(name) => Ok((name, HVal::Obj(value))),
                None => Err(self.err("a header name is not a string")),
            })
            .collect()
    }

    /// A header value as `str(msg.get(name))` gives it (surrogate escapes as U+FFFD).
    fn header_str(&self, v: HVal<'_>) -> Result<String> {
        match v {
            HVal::Text(t) => Ok(text_lossy(t)),
            HVal::Obj(id) => match &self.objs[id] {
                Obj::Str(t) => Ok(text_lossy(t)),
                _ if is_instance_of(self.objs, id, Kind::Header) => {
                    let chunks = self.header_chunks(id)?;
                    Ok(header_to_str(&chunks))
                }
                _ => Err(self.err(format!(
                    "a header value is a {}, not text",
                    type_name(self.objs, id)
                ))),
            },
        }
    }

    /// The first header called `name` (any case), as `msg.get(name)` finds it.
    fn get_header(&self, headers: &[(&[u8], HVal<'_>)], name: &str) -> Result<Option<String>> {
        for (k, v) in headers {
            if text_lossy(k).to_lowercase() == name {
                return self.header_str(*v).map(Some);
            }
        }
        Ok(None)
    }

    fn charset_of(&self, id: Id) -> Result<Cs> {
        if !is_instance_of(self.objs, id, Kind::Charset) {
            return Err(self.err(format!(
                "a header chunk's charset is a {}, not a Charset",
                type_name(self.objs, id)
            )));
        }
        let text = |name: &str| {
            self.attr(id, name)
                .and_then(|v| self.str_of(v))
                .map(text_lossy)
        };
        let henc = match self.attr(id, "header_encoding").map(|v| &self.objs[v]) {
            Some(Obj::Int(i)) => Some(*i),
            _ => None,
        };
        Ok(Cs {
            name: text("input_charset").unwrap_or_else(|| "us-ascii".into()),
            henc,
            codec: text("output_codec").unwrap_or_else(|| "us-ascii".into()),
        })
    }

    /// A `Header` object's `_chunks`.
    fn header_chunks(&self, h: Id) -> Result<Vec<(Text, Cs)>> {
        let pairs = self.attr_pairs(
            h,
            "_chunks",
            "a Header's _chunks is not a list",
            "a Header chunk is not a (text, charset) pair",
        )?;
        pairs
            .into_iter()
            .map(|(text, cs)| match self.str_of(text) {
                Some(text) => Ok((text.to_vec(), self.charset_of(cs)?)),
                None => Err(self.err("a Header chunk is not text")),
            })
            .collect()
    }

    /// `policy.fold(name, value)` of compat32, with surrogate-escaped values written as
    /// they are (as `fold_binary` does).
    fn write_header(&mut self, out: &mut Vec<u8>, name: &[u8], value: HVal<'_>) -> Result<()> {
        let mut line = name.to_vec();
        line.extend_from_slice(b": ");
        let objs = self.objs;
        let (chunks, headerlen, cont_ws): (Vec<(Text, Cs)>, usize, Text) = match value {
            HVal::Text(t) => (
                vec![(
                    t.to_vec(),
                    if t.is_ascii() {
                        Cs::us_ascii()
                    } else {
                        Cs::utf8()
                    },
                )],
                char_len(name) + 2,
                b" ".to_vec(),
            ),
            HVal::Obj(id) => match &objs[id] {
                Obj::Str(t) if has_surrogates(t) => {
                    line.extend_from_slice(t);
                    line.extend_from_slice(&self.nl.clone());
                    return self.put(out, &line);
                }
                Obj::Str(t) => (
                    vec![(
                        t.clone(),
                        if t.is_ascii() {
                            Cs::us_ascii()
                        } else {
                            Cs::utf8()
                        },
                    )],
                    char_len(name) + 2,
                    b" ".to_vec(),
                ),
                _ if is_instance_of(self.objs, id, Kind::Header) => {
                    let headerlen = match self.attr(id, "_headerlen").map(|v| &self.objs[v]) {
                        Some(Obj::Int(i)) => (*i).clamp(0, 1 << 20) as usize,
                        _ => 0,
                    };
                    let ws = self
                        .attr(id, "_continuation_ws")
                        .and_then(|v| self.str_of(v))
                        .map(<[u8]>::to_vec)
                        .unwrap_or_else(|| b" ".to_vec());
                    let chunks = self.header_chunks(id)?;
                    let cost: usize = chunks.iter().map(|(t, _)| t.len() + 16).sum();
                    self.charge(cost)?;
                    (chunks, headerlen, ws)
                }
                _ => {
                    return Err(self.err(format!(
                        "header {} has a value of type {}",
                        printable(name),
                        type_name(self.objs, id)
                    )))
                }
            },
        };
        let encoded = header_encode(&chunks, headerlen, &cont_ws, &self.nl);
        if embedded_header(&encoded) {
            return Err(self.err(format!(
                "header {} holds an embedded header line; Python's email package refuses to write it",
                printable(name)
            )));
        }
        line.extend_from_slice(&encoded);
        line.extend_from_slice(&self.nl.clone());
        self.put(out, &line)
    }

    fn write_headers(&mut self, out: &mut Vec<u8>, headers: &[(&[u8], HVal<'_>)]) -> Result<()> {
        for (name, value) in headers {
            self.write_header(out, name, *value)?;
        }
        let nl = self.nl.clone();
        self.put(out, &nl)
    }

    /// `Generator._write_lines`: lines end in the policy's separator; a last line
    /// without an end is written without one.
    fn write_lines(&mut self, out: &mut Vec<u8>, text: &[u8]) -> Result<()> {
        let nl = self.nl.clone();
        let mut start = 0;
        let mut i = 0;
        while i < text.len() {
            match text[i] {
                b'\r' | b'\n' => {
                    self.put(out, &text[start..i])?;
                    self.put(out, &nl)?;
                    i += if text[i] == b'\r' && text.get(i + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                    start = i;
                }
                _ => i += 1,
            }
        }
        self.put(out, &text[start..])
    }

    /// Writes a payload that is not a list as the generator would (text, or bytes).
    fn write_raw_payload(&mut self, out: &mut Vec<u8>, id: Id) -> Result<bool> {
        let objs = self.objs;
        match &objs[id] {
            Obj::None => Ok(true),
            Obj::Str(t) => self.put(out, t).map(|_| true),
            Obj::Bytes(b) => {
                let t = surrogateescape_decode(b);
                self.put(out, &t).map(|_| true)
            }
            _ => Ok(false),
        }
    }

    /// Renders one message: headers, a blank line, the body (`Generator._write`).
    fn render(&mut self, out: &mut Vec<u8>, msg: Id, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!(
                "message parts nest deeper than {MAX_DEPTH} levels (or a part contains itself)"
            )));
        }
        if !is_message(self.objs, msg) {
            return Err(self.err(format!(
                "a message part is a {}, not a message",
                type_name(self.objs, msg)
            )));
        }
        let objs = self.objs;
        let headers = self.headers(msg)?;
        self.charge(16 * (headers.len() + 1))?;
        let ctype = self.content_type(msg, &headers)?;
        let (main, sub) = ctype.split_once('/').unwrap_or((&ctype, ""));
        let specific = format!("{main}_{sub}").replace('-', "_");
        let generic = main.replace('-', "_");
        let handler = handler_named(&specific)
            .or_else(|| handler_named(&generic))
            .unwrap_or(Handler::Text);
        let payload = self.attr(msg, "_payload");
        match handler {
            Handler::Text => {
                self.write_headers(out, &headers)?;
                let Some(p) = payload else { return Ok(()) };
                match &objs[p] {
                    Obj::None => Ok(()),
                    Obj::Str(t) => self.write_lines(out, t),
                    Obj::Bytes(b) => {
                        let t = surrogateescape_decode(b);
                        self.write_lines(out, &t)
                    }
                    _ => Err(self.err(format!(
                        "a {ctype} part has a {} payload, not text",
                        type_name(self.objs, p)
                    ))),
                }
            }
            Handler::Message => {
                self.write_headers(out, &headers)?;
                let Some(p) = payload else { return Ok(()) };
                match &objs[p] {
                    Obj::List(items) => match items.first() {
                        Some(&first) => self.render(out, first, depth + 1),
                        None => Err(self.err("a message/* part has an empty payload list")),
                    },
                    _ if is_message(self.objs, p) => self.render(out, p, depth + 1),
                    _ => {
                        if self.write_raw_payload(out, p)? {
                            Ok(())
                        } else {
                            Err(self.err(format!(
                                "a message/* part has a {} payload",
                                type_name(self.objs, p)
                            )))
                        }
                    }
                }
            }
            Handler::DeliveryStatus => {
                self.write_headers(out, &headers)?;
                let Some(p) = payload else { return Ok(()) };
                let single = [p];
                let items: &[Id] = match &objs[p] {
                    Obj::List(items) => items,
                    _ if is_message(objs, p) => &single,
                    _ => {
                        return if self.write_raw_payload(out, p)? {
                            Ok(())
                        } else {
                            Err(self.err("a message/delivery-status part has an odd payload"))
                        }
                    }
                };
                let nl = self.nl.clone();
                for (i, &part) in items.iter().enumerate() {
                    let mut text = Vec::new();
                    self.render(&mut text, part, depth + 1)?;
                    // Each block without its trailing empty line, blocks joined by one.
                    if text.ends_with(&nl) {
                        text.truncate(text.len() - nl.len());
                    }
                    if i > 0 {
                        self.put(out, &nl)?;
                    }
                    self.put(out, &text)?;
                }
                Ok(())
            }
            Handler::Multipart => self.render_multipart(out, msg, headers, payload, depth),
        }
    }

    fn render_multipart(
        &mut self,
        out: &mut Vec<u8>,
        msg: Id,
        headers: Vec<(&'a [u8], HVal<'a>)>,
        payload: Option<Id>,
        depth: usize,
    ) -> Result<()> {
        let objs = self.objs;
        let new_ctype: Vec<u8>;
        let mut headers: Vec<(&[u8], HVal<'_>)> = headers;
        let single: [Id; 1];
        let parts: &[Id] = match payload.map(|p| (p, &objs[p])) {
            None | Some((_, Obj::None)) => &[],
            Some((_, Obj::List(items))) => items,
            Some((p, _)) if is_message(objs, p) => {
                single = [p];
                &single
            }
            Some((p, _)) => {
                // A text payload (a non-strict parse without a start boundary): as is.
                self.write_headers(out, &headers)?;
                return if self.write_raw_payload(out, p)? {
                    Ok(())
                } else {
                    Err(self.err(format!(
                        "a multipart has a {} payload",
                        type_name(self.objs, p)
                    )))
                };
            }
        };
        let nl = self.nl.clone();
        let ctype_value = self.get_header(&headers, "content-type")?;
        let boundary = ctype_value
            .as_deref()
            .and_then(get_boundary)
            .filter(|b| !b.is_empty());
        // Without a boundary, the parts are rendered first so that a new one can be
        // chosen that none of them contains, and Content-Type is rewritten with it.
        let mut prerendered: Option<Vec<Vec<u8>>> = None;
        let boundary = match boundary {
            Some(b) => b,
            None => {
                let mut texts = Vec::with_capacity(parts.len());
                for &part in parts {
                    let mut text = Vec::new();
                    self.render(&mut text, part, depth + 1)?;
                    texts.push(text);
                }
                let b = make_boundary(&texts, &nl);
                let Some(value) = ctype_value.as_deref() else {
                    return Err(self.err("a multipart without a Content-Type header"));
                };
                new_ctype = set_boundary_value(value, &b).into_bytes();
                for (name, value) in headers.iter_mut() {
                    if text_lossy(name).to_lowercase() == "content-type" {
                        *value = HVal::Text(&new_ctype);
                    }
                }
                prerendered = Some(texts);
                b
            }
        };
        self.write_headers(out, &headers)?;
        if let Some(preamble) = self.opt_text_attr(msg, "preamble")? {
            self.write_lines(out, preamble)?;
            self.put(out, &nl)?;
        }
        let mut delim = b"--".to_vec();
        delim.extend_from_slice(boundary.as_bytes());
        let mut first_line = delim.clone();
        first_line.extend_from_slice(&nl);
        self.put(out, &first_line)?;
        let mut between = nl.clone();
        between.extend_from_slice(&first_line);
        match prerendered {
            Some(texts) => {
                for (i, text) in texts.iter().enumerate() {
                    if i > 0 {
                        self.put(out, &between)?;
                    }
                    self.put(out, text)?;
                }
            }
            None => {
                for (i, &part) in parts.iter().enumerate() {
                    if i > 0 {
                        self.put(out, &between)?;
                    }
                    self.render(out, part, depth + 1)?;
                }
            }
        }
        let mut close = nl.clone();
        close.extend_from_slice(&delim);
        close.extend_from_slice(b"--");
        close.extend_from_slice(&nl);
        self.put(out, &close)?;
        if let Some(epilogue) = self.opt_text_attr(msg, "epilogue")? {
            self.write_lines(out, epilogue)?;
        }
        Ok(())
    }

    /// `Message.get_content_type()`.
    fn content_type(&self, msg: Id, headers: &[(&[u8], HVal<'_>)]) -> Result<String> {
        match self.get_header(headers, "content-type")? {
            Some(value) => {
                let ctype = py_strip(value.split(';').next().unwrap_or("")).to_lowercase();
                if ctype.matches('/').count() != 1 {
                    Ok("text/plain".into())
                } else {
                    Ok(ctype)
                }
            }
            None => Ok(self
                .attr(msg, "_default_type")
                .and_then(|v| self.str_of(v))
                .map(text_lossy)
                .unwrap_or_else(|| "text/plain".into())),
        }
    }
}

/// `_embedded_header.search(value)`: a line break followed by something like `Name:`.
fn embedded_header(s: &[u8]) -> bool {
    for (i, &b) in s.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        for (j, &c) in s[i + 1..].iter().enumerate() {
            if c == b' ' || c == b'\t' {
                break;
            }
            if c == b':' && j > 0 {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// Header encoding (email.header.Header.encode with an unlimited line length, which is
// what as_string's maxheaderlen=0 asks for)

/// `email.header._ValueFormatter` with no line length limit.
struct Formatter {
    lines: Vec<Text>,
    cur: Vec<(Text, Text)>,
    initial: usize,
}

impl Formatter {
    fn cur_len(&self) -> usize {
        self.initial
            + self
                .cur
                .iter()
                .map(|(f, p)| char_len(f) + char_len(p))
                .sum::<usize>()
    }

    fn cur_str(&self) -> Text {
        let mut s = Vec::new();
        for (f, p) in &self.cur {
            s.extend_from_slice(f);
            s.extend_from_slice(p);
        }
        s
    }

    fn newline(&mut self) {
        let end = self.cur.pop().unwrap_or_default();
        if !(end.0 == b" " && end.1.is_empty()) {
            self.cur.push(end);
        }
        if self.cur_len() > 0 {
            let s = self.cur_str();
            let only_ws = self.initial == 0 && (self.cur.is_empty() || py_isspace_str(&s));
            match self.lines.last_mut() {
                Some(last) if only_ws => last.extend_from_slice(&s),
                _ => self.lines.push(s),
            }
        }
        self.cur.clear();
        self.initial = 0;
    }

    fn add_transition(&mut self) {
        self.cur.push((b" ".to_vec(), Vec::new()));
    }

    fn feed(&mut self, fws: &[u8], string: &[u8], cs: &Cs) {
        if cs.henc.is_none() {
            // _ascii_split: (whitespace, word) pairs.
            let mut s = fws.to_vec();
            s.extend_from_slice(string);
            let mut parts: Vec<&[u8]> = Vec::new();
            let mut i = 0;
            let mut start = 0;
            while i < s.len() {
                if s[i] == b' ' || s[i] == b'\t' {
                    let ws_start = i;
                    while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                        i += 1;
                    }
                    parts.push(&s[start..ws_start]);
                    parts.push(&s[ws_start..i]);
                    start = i;
                } else {
                    i += 1;
                }
            }
            parts.push(&s[start..]);
            if parts[0].is_empty() {
                parts.remove(0);
            } else {
                parts.insert(0, b"");
            }
            for pair in parts.chunks(2) {
                if let [f, p] = pair {
                    self.cur.push((f.to_vec(), p.to_vec()));
                }
            }
        } else {
            self.cur.push((fws.to_vec(), encode_word(string, cs)));
        }
    }

    fn finish(mut self, nl: &[u8]) -> Text {
        self.newline();
        self.lines.join(nl)
    }
}

/// `Charset.__eq__` on `Header._normalize`'s terms.
fn header_normalize(chunks: &[(Text, Cs)]) -> Vec<(Text, Cs)> {
    let mut out: Vec<(Text, Cs)> = Vec::new();
    for (s, cs) in chunks {
        match out.last_mut() {
            Some(last) if last.1.name == cs.name => {
                last.0.push(b' ');
                last.0.extend_from_slice(s);
            }
            _ => out.push((s.clone(), cs.clone())),
        }
    }
    out
}

/// `Header._nonctext` of one character.
fn nonctext(cp: u32) -> bool {
    py_isspace(cp) || cp == '(' as u32 || cp == ')' as u32 || cp == '\\' as u32
}

fn first_cp(s: &[u8]) -> Option<u32> {
    code_points(s).next().map(|(_, cp, _)| cp)
}

fn last_cp(s: &[u8]) -> Option<u32> {
    code_points(s).last().map(|(_, cp, _)| cp)
}

/// `Header.encode(linesep=nl, maxlinelen=0)`.
fn header_encode(chunks: &[(Text, Cs)], headerlen: usize, cont_ws: &[u8], nl: &[u8]) -> Text {
    let chunks = header_normalize(chunks);
    let mut f = Formatter {
        lines: Vec::new(),
        cur: Vec::new(),
        initial: headerlen,
    };
    let mut lastcs: Option<&Cs> = None;
    let mut started = false;
    let mut lastspace = false;
    for (string, cs) in &chunks {
        if started {
            let hasspace = first_cp(string).is_some_and(nonctext);
            if lastcs.is_some_and(|c| !c.is_ascii()) {
                if !hasspace || !cs.is_ascii() {
                    f.add_transition();
                }
            } else if !cs.is_ascii() && !lastspace {
                f.add_transition();
            }
        }
        lastspace = last_cp(string).is_some_and(nonctext);
        lastcs = Some(cs);
        started = true;
        let lines = py_splitlines(string);
        f.feed(b"", lines.first().copied().unwrap_or(b""), cs);
        for line in lines.iter().skip(1) {
            f.newline();
            if cs.henc.is_some() {
                let mut s = b" ".to_vec();
                s.extend_from_slice(py_lstrip(line));
                f.feed(cont_ws, &s, cs);
            } else {
                let stripped = py_lstrip(line);
                let fws = &line[..line.len() - stripped.len()];
                f.feed(fws, stripped, cs);
            }
        }
        if lines.len() > 1 {
            f.newline();
        }
    }
    if !chunks.is_empty() {
        f.add_transition();
    }
    f.finish(nl)
}

/// `str(header)`.
fn header_to_str(chunks: &[(Text, Cs)]) -> String {
    let mut out = String::new();
    let mut lastcs: Option<String> = None;
    let mut lastspace = false;
    let mut any = false;
    for (string, cs) in header_normalize(chunks) {
        let mut next = Some(cs.name.clone());
        let string = if cs.name == "unknown-8bit" {
            text_lossy(&text_to_bytes(&string))
                .chars()
                .map(|c| if c.is_ascii() { c } else { '\u{FFFD}' })
                .collect()
        } else {
            text_lossy(&string)
        };
        let ascii = |c: &Option<String>| c.as_deref().is_none_or(|n| n == "us-ascii");
        if any {
            let hasspace = string.chars().next().is_some_and(|c| nonctext(c as u32));
            if !ascii(&lastcs) {
                if ascii(&next) && !hasspace {
                    out.push(' ');
                    next = None;
                }
            } else if !ascii(&next) && !lastspace {
                out.push(' ');
            }
        }
        lastspace = string.chars().last().is_some_and(|c| nonctext(c as u32));
        lastcs = next;
        any = true;
        out.push_str(&string);
    }
    out
}

/// Encodes text in a charset's codec for an encoded word: `(label, bytes)`. Codecs
/// qtool does not carry fall back to UTF-8 (labelled so): the same text, correctly
/// labelled, where Python would use the legacy charset.
fn charset_encode(s: &[u8], cs: &Cs) -> (String, Vec<u8>) {
    let codec = cs.codec.to_ascii_lowercase().replace('_', "-");
    let fallback = || ("utf-8".to_string(), text_lossy(s).into_bytes());
    match codec.as_str() {
        "utf-8" | "utf8" => {
            if has_surrogates(s) {
                fallback()
            } else {
                (cs.codec.clone(), s.to_vec())
            }
        }
        "us-ascii" | "ascii" => {
            if s.is_ascii() {
                (cs.codec.clone(), s.to_vec())
            } else {
                fallback()
            }
        }
        "iso-8859-1" | "latin-1" | "latin1" | "l1" | "iso8859-1" => {
            let mut out = Vec::with_capacity(s.len());
            for (_, cp, _) in code_points(s) {
                if cp > 0xFF || (0xD800..=0xDFFF).contains(&cp) {
                    return fallback();
                }
                out.push(cp as u8);
            }
            (cs.codec.clone(), out)
        }
        "unknown-8bit" => {
            let mut out = Vec::with_capacity(s.len());
            for (_, cp, _) in code_points(s) {
                match cp {
                    0..=0x7F => out.push(cp as u8),
                    0xDC80..=0xDCFF => out.push((cp - 0xDC00) as u8),
                    _ => return fallback(),
                }
            }
            (cs.codec.clone(), out)
        }
        _ => fallback(),
    }
}

fn qp_header_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'!' | b'*' | b'+' | b'/')
}

/// One RFC 2047 encoded word (`Charset.header_encode_lines` with room for all of it).
fn encode_word(s: &[u8], cs: &Cs) -> Text {
    let (label, bytes) = charset_encode(s, cs);
    if bytes.is_empty() {
        return Vec::new();
    }
    let b64_len = bytes.len().div_ceil(3) * 4;
    let qp_len: usize = bytes
        .iter()
        .map(|&b| if qp_header_safe(b) || b == b' ' { 1 } else { 3 })
        .sum();
    let base64 = match cs.henc {
        Some(1) => false,
        Some(2) => true,
        _ => b64_len < qp_len,
    };
    let mut out = format!("=?{label}?");
    if base64 {
        out.push_str("b?");
        out.push_str(&crate::metadata::base64_encode(&bytes));
    } else {
        out.push_str("q?");
        for &b in &bytes {
            if qp_header_safe(b) {
                out.push(b as char);
            } else if b == b' ' {
                out.push('_');
            } else {
                out.push_str(&format!("={b:02X}"));
            }
        }
    }
    out.push_str("?=");
    out.into_bytes()
}

// ---------------------------------------------------------------------------------------
// Content-Type parameters (email.message's _parseparam, decode_params, get_boundary,
// set_boundary)

/// A parameter value as `_get_params_preserve` returns it: quoted text, or an RFC 2231
/// `(charset, language, quoted text)` triple.
#[derive(Debug, Clone, PartialEq)]
enum PVal {
    S(String),
    Ext(Option<String>, Option<String>, String),
}

/// `email.message._parseparam`.
fn parse_params(value: &str) -> Vec<String> {
    let chars: Vec<char> = std::iter::once(';').chain(value.chars()).collect();
    // Prefix counts of '"' and of '\"' pairs (by start position).
    let mut quotes = vec![0usize; chars.len() + 1];
    let mut escaped = vec![0usize; chars.len() + 1];
    for (i, &c) in chars.iter().enumerate() {
        quotes[i + 1] = quotes[i] + (c == '"') as usize;
        let pair = c == '\\' && chars.get(i + 1) == Some(&'"');
        escaped[i + 1] = escaped[i] + pair as usize;
    }
    let mut out = Vec::new();
    let mut base = 0;
    while chars.get(base) == Some(&';') {
        base += 1;
        let find = |from: usize| {
            chars[from..]
                .iter()
                .position(|&c| c == ';')
                .map(|p| p + from)
        };
        let mut end = find(base);
        while let Some(e) = end {
            if e <= base {
                break;
            }
            let q = quotes[e] - quotes[base];
            let esc = escaped[e - 1] - escaped[base];
            if q.wrapping_sub(esc).is_multiple_of(2) {
                break;
            }
            end = find(e + 1);
        }
        let end = end.unwrap_or(chars.len());
        let f: String = chars[base..end].iter().collect();
        let f = match f.split_once('=') {
            Some((k, v)) => format!("{}={}", py_strip(k).to_lowercase(), py_strip(v)),
            None => f,
        };
        out.push(py_strip(&f).to_string());
        base = end;
    }
    out
}

/// `email.utils.unquote`.
fn unquote(s: &str) -> String {
    if s.chars().count() > 1 {
        if s.starts_with('"') && s.ends_with('"') {
            return s[1..s.len() - 1]
                .replace("\\\\", "\\")
                .replace("\\\"", "\"");
        }
        if s.starts_with('<') && s.ends_with('>') {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// `email.utils.quote`.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `rfc2231_continuation`: `name*`, `name*N`, `name*N*` → (name, N).
fn rfc2231_name(name: &str) -> Option<(String, Option<u64>)> {
    let (base, rest) = name.split_once('*')?;
    if base.is_empty() || !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    if rest.is_empty() {
        return Some((base.to_string(), None));
    }
    let digits = rest.strip_suffix('*').unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base.to_string(), Some(digits.parse().unwrap_or(u64::MAX))))
}

/// `urllib.parse.unquote(s, encoding='latin-1')`.
fn percent_decode_latin1(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0);
            out.push(char::from((hex(b[i + 1]) * 16 + hex(b[i + 2])) as u8));
            i += 3;
            continue;
        }
        let c = s[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `Message._get_params_preserve` (with `email.utils.decode_params`).
fn params_preserve(value: &str) -> Vec<(String, PVal)> {
    let mut params = Vec::new();
    for p in parse_params(value) {
        match p.split_once('=') {
            Some((k, v)) => params.push((py_strip(k).to_string(), py_strip(v).to_string())),
            None => params.push((py_strip(&p).to_string(), String::new())),
        }
    }
    let mut it = params.into_iter();
    let mut out = Vec::new();
    if let Some((k, v)) = it.next() {
        out.push((k, PVal::S(v)));
    }
    // RFC 2231 parameters in order of appearance: (name, [(number, text, encoded)]).
    type Continuations = Vec<(Option<u64>, String, bool)>;
    let mut rfc: Vec<(String, Continuations)> = Vec::new();
    for (name, value) in it {
        let encoded = name.ends_with('*');
        let value = unquote(&value);
        match rfc2231_name(&name) {
            Some((base, num)) => match rfc.iter_mut().find(|(n, _)| *n == base) {
                Some((_, conts)) => conts.push((num, value, encoded)),
                None => rfc.push((base, vec![(num, value, encoded)])),
            },
            None => out.push((name, PVal::S(format!("\"{}\"", quote(&value))))),
        }
    }
    for (name, mut conts) in rfc {
        conts.sort();
        let mut joined = String::new();
        let mut extended = false;
        for (_, s, enc) in conts {
            if enc {
                joined.push_str(&percent_decode_latin1(&s));
                extended = true;
            } else {
                joined.push_str(&s);
            }
        }
        let value = quote(&joined);
        if extended {
            let parts: Vec<&str> = value.splitn(3, '\'').collect();
            let pval = if parts.len() <= 2 {
                PVal::Ext(None, None, format!("\"{value}\""))
            } else {
                PVal::Ext(
                    Some(parts[0].to_string()),
                    Some(parts[1].to_string()),
                    format!("\"{}\"", parts[2]),
                )
            };
            out.push((name, pval));
        } else {
            out.push((name, PVal::S(format!("\"{value}\""))));
        }
    }
    out
}

/// `Message.get_boundary()` of a Content-Type value.
fn get_boundary(ctype: &str) -> Option<String> {
    let (_, v) = params_preserve(ctype)
        .into_iter()
        .find(|(k, _)| k.to_lowercase() == "boundary")?;
    let collapsed = match v {
        PVal::S(s) => unquote(&unquote(&s)),
        PVal::Ext(charset, _, text) => {
            let text = unquote(&text);
            // bytes(text, 'raw-unicode-escape'), decoded in the charset with 'replace'.
            let mut raw = Vec::new();
            for c in text.chars() {
                if (c as u32) < 0x100 {
                    raw.push(c as u32 as u8);
                } else {
                    raw.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
            }
            let charset = charset.unwrap_or_else(|| "us-ascii".into()).to_lowercase();
            match charset.replace('_', "-").as_str() {
                "utf-8" | "utf8" => String::from_utf8_lossy(&raw).into_owned(),
                "us-ascii" | "ascii" => raw
                    .iter()
                    .map(|&b| if b < 0x80 { b as char } else { '\u{FFFD}' })
                    .collect(),
                "iso-8859-1" | "latin-1" | "latin1" | "l1" => {
                    raw.iter().map(|&b| b as char).collect()
                }
                _ => unquote(&text),
            }
        }
    };
    Some(py_rstrip(&collapsed).to_string())
}

/// The Content-Type value `Message.set_boundary(boundary)` writes.
fn set_boundary_value(ctype: &str, boundary: &str) -> String {
    let mut params = params_preserve(ctype);
    let mut found = false;
    for (k, v) in params.iter_mut() {
        if k.to_lowercase() == "boundary" {
            *k = "boundary".into();
            *v = PVal::S(format!("\"{boundary}\""));
            found = true;
        }
    }
    if !found {
        params.push(("boundary".into(), PVal::S(format!("\"{boundary}\""))));
    }
    let parts: Vec<String> = params
        .into_iter()
        .map(|(k, v)| match v {
            PVal::S(s) if s.is_empty() => k,
            PVal::S(s) => format!("{k}={s}"),
            PVal::Ext(c, l, t) => {
                let item = |s: Option<String>| s.map_or(Value::None, Value::Str);
                let tuple = Value::Tuple(vec![item(c), item(l), Value::Str(t)]);
                format!("{k}={}", tuple.python_repr())
            }
        })
        .collect();
    parts.join("; ")
}

/// `Generator._make_boundary`, with the number derived from the parts' text instead of
/// random (so the same file always reads the same).
fn make_boundary(texts: &[Vec<u8>], nl: &[u8]) -> String {
    let alltext = texts.join(nl);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &alltext {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    unique_boundary(hash % (i64::MAX as u64), &alltext)
}

/// `===============<token>==`, with `.0`, `.1`... added while a line of `alltext` is
/// `--boundary` or `--boundary--`.
fn unique_boundary(token: u64, alltext: &[u8]) -> String {
    let base = format!("==============={token:019}==");
    let lines: Vec<&[u8]> = alltext.split(|&b| b == b'\n').collect();
    let taken = |b: &str| {
        let open = format!("--{b}");
        let close = format!("--{b}--");
        lines
            .iter()
            .any(|l| *l == open.as_bytes() || *l == close.as_bytes())
    };
    let mut boundary = base.clone();
    let mut counter = 0u64;
    while taken(&boundary) {
        boundary = format!("{base}.{counter}");
        counter += 1;
    }
    boundary
}

// =======================================================================================
// Writing pickles

fn write_text(out: &mut Vec<u8>, text: &[u8]) {
    let n = text.len();
    if n <= 0xFF {
        out.push(0x8c);
        out.push(n as u8);
    } else if let Ok(n) = u32::try_from(n) {
        out.push(b'X');
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(0x8d);
        out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    out.extend_from_slice(text);
}

fn write_long(out: &mut Vec<u8>, le: &[u8]) {
    if le.len() <= 0xFF {
        out.push(0x8a);
        out.push(le.len() as u8);
    } else {
        out.push(0x8b);
        out.extend_from_slice(&(le.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(le);
}

fn hashable(v: &Value) -> bool {
    match v {
        Value::List(_) | Value::Dict(_) => false,
        Value::Tuple(items) => items.iter().all(hashable),
        _ => true,
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value, depth: usize, key: &str) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::data(
            format!("metadata {key}: nests deeper than {MAX_DEPTH} levels"),
            "flatten the metadata",
        ));
    }
    match v {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::Int(i) => match *i {
            0..=0xFF => out.extend_from_slice(&[b'K', *i as u8]),
            0x100..=0xFFFF => {
                out.push(b'M');
                out.extend_from_slice(&(*i as u16).to_le_bytes());
            }
            _ => match i32::try_from(*i) {
                Ok(n) => {
                    out.push(b'J');
                    out.extend_from_slice(&n.to_le_bytes());
                }
                Err(_) => write_long(out, &i128_to_le(*i)),
            },
        },
        Value::BigInt(digits) => {
            let Some(le) = decimal_to_le(digits) else {
                return Err(Error::data(
                    format!("metadata {key}: {digits:?} is not an integer"),
                    "",
                ));
            };
            write_long(out, &le);
        }
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Str(s) => write_text(out, s.as_bytes()),
        Value::Bytes(b) => {
            let n = b.len();
            if n <= 0xFF {
                out.extend_from_slice(&[b'C', n as u8]);
            } else if let Ok(n) = u32::try_from(n) {
                out.push(b'B');
                out.extend_from_slice(&n.to_le_bytes());
            } else {
                out.push(0x8e);
                out.extend_from_slice(&(n as u64).to_le_bytes());
            }
            out.extend_from_slice(b);
        }
        Value::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                for item in items {
                    write_value(out, item, depth + 1, key)?;
                }
                out.push(b'e');
            }
        }
        Value::Tuple(items) => match items.len() {
            0 => out.push(b')'),
            n @ 1..=3 => {
                for item in items {
                    write_value(out, item, depth + 1, key)?;
                }
                out.push(0x84 + n as u8);
            }
            _ => {
                out.push(b'(');
                for item in items {
                    write_value(out, item, depth + 1, key)?;
                }
                out.push(b't');
            }
        },
        Value::Dict(pairs) => {
            out.push(b'}');
            if !pairs.is_empty() {
                out.push(b'(');
                for (k, v) in pairs {
                    if !hashable(k) {
                        return Err(Error::data(
                            format!("metadata {key}: a dict key is a list or dict"),
                            "Python dict keys must be hashable",
                        ));
                    }
                    write_value(out, k, depth + 1, key)?;
                    write_value(out, v, depth + 1, key)?;
                }
                out.push(b'u');
            }
        }
    }
    Ok(())
}

// =======================================================================================

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::dump_msgdata;
    use std::path::{Path, PathBuf};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/mailman/");
    const PICKLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pickles/");

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The metadata as Mailman's dequeue returns it, dumped as the .dump files are.
    fn dump(entry: &MailmanEntry) -> String {
        let mut meta = entry.metadata.clone();
        if meta.is_true("_parsemsg") {
            let size = entry.original_size.expect("text entries have a size");
            meta.set("original_size", Value::Int(size as i128));
        }
        dump_msgdata(&meta, &["received_time"])
    }

    fn show(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Checks X.pck against X.eml and X.dump; `@@BOUNDARY@@` in X.eml stands for the
    /// boundary qtool generated.
    fn check_case(dir: &str, name: &str) {
        let base = PathBuf::from(dir).join(name);
        let entry = decode(&read(&base.with_extension("pck")))
            .unwrap_or_else(|e| panic!("{name}: {} ({})", e.message, e.hint));
        let mut want = read(&base.with_extension("eml"));
        if want.windows(12).any(|w| w == b"@@BOUNDARY@@") {
            let got = show(&entry.message);
            let start = got.find("boundary=\"").expect("a boundary parameter") + 10;
            let end = start + got[start..].find('"').expect("a closing quote");
            let boundary = &got[start..end];
            assert!(boundary.starts_with("==============="), "{boundary}");
            want = show(&want).replace("@@BOUNDARY@@", boundary).into_bytes();
        }
        assert_eq!(show(&entry.message), show(&want), "{name}: message text");
        assert_eq!(entry.message, want, "{name}: message bytes");
        let want_dump = show(&read(&base.with_extension("dump")));
        assert_eq!(dump(&entry), want_dump, "{name}: metadata");
    }

    #[test]
    fn mailman_fixtures_round_trip_exactly() {
        for name in ["empty", "multipart", "plaintext", "seed", "types"] {
            check_case(FIXTURES, name);
        }
        let plain = decode(&read(Path::new(&format!("{FIXTURES}plaintext.pck")))).unwrap();
        assert!(plain.message_was_text);
        assert_eq!(plain.original_size, Some(64));
        let seed = decode(&read(Path::new(&format!("{FIXTURES}seed.pck")))).unwrap();
        assert!(!seed.message_was_text);
        assert_eq!(seed.original_size, None);
        let keys: Vec<&str> = seed.metadata.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["listid", "foo", "bar", "version", "_parsemsg"]);
    }

    #[test]
    fn generated_pickles_match_python() {
        let mut names: Vec<String> = std::fs::read_dir(PICKLES)
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                Some(name.strip_suffix(".pck")?.to_string())
            })
            .collect();
        names.sort();
        assert!(names.len() >= 8, "{names:?}");
        for name in &names {
            check_case(PICKLES, name);
        }
    }

    #[test]
    fn generated_metadata_types() {
        let e = decode(&read(Path::new(&format!("{PICKLES}p0_folded.pck")))).unwrap();
        let m = &e.metadata;
        assert_eq!(m.get("tiny"), Some(&Value::Float(1e-7)));
        assert_eq!(m.get("big"), Some(&Value::Int(1 << 100)));
        assert_eq!(m.get("negbig"), Some(&Value::Int(-(1 << 70))));
        assert_eq!(m.get("i64"), Some(&Value::Int(1 << 63)));
        assert_eq!(m.get("empty"), Some(&Value::Str(String::new())));
        assert_eq!(m.get("nothing"), Some(&Value::None));
        assert_eq!(
            m.get("received_time"),
            Some(&Value::Float(1733342400.1234567))
        );
        let e = decode(&read(Path::new(&format!("{PICKLES}p1_multipart.pck")))).unwrap();
        assert_eq!(
            e.metadata.get("raw"),
            Some(&Value::Bytes(b"\x00\xffab'\"".to_vec()))
        );
        let e = decode(&read(Path::new(&format!("{PICKLES}p0_text.pck")))).unwrap();
        assert!(e.message_was_text);
        assert_eq!(e.original_size, Some(81));
        assert!(e.message.ends_with(b"escaped byte \xff.\r\n"));
    }

    // --- hand-made pickles --------------------------------------------------------------

    /// A queue file: a message str, then `meta` (a pickled dict body).
    fn with_meta(meta: &[u8]) -> Vec<u8> {
        let mut f = b"\x80\x04\x8c\x02hi.".to_vec();
        f.extend_from_slice(meta);
        f
    }

    fn err_of(bytes: &[u8]) -> Error {
        match decode(bytes) {
            Ok(e) => panic!("decoded hostile input: {e:?}"),
            Err(e) => {
                assert_eq!(e.code, crate::error::exit::DATAERR);
                e
            }
        }
    }

    #[test]
    fn sets_bytes_and_protocol_0_1_spellings() {
        // pickle.dumps({'s': {'a'}, 'f': frozenset(), 'b': b'\xff', 'e': b'',
        //   'ba': bytearray(b'ab')}, 2), and the protocol 0/1 spellings of the same.
        let p2 = b"\x80\x02}q\x00(X\x01\x00\x00\x00sq\x01c__builtin__\nset\nq\x02]q\x03X\x01\x00\x00\x00aq\x04a\x85q\x05Rq\x06X\x01\x00\x00\x00bq\x07c_codecs\nencode\nq\x08X\x02\x00\x00\x00\xc3\xbfq\tX\x06\x00\x00\x00latin1q\n\x86q\x0bRq\x0cX\x01\x00\x00\x00eq\rc__builtin__\nbytes\nq\x0e)Rq\x0fX\x02\x00\x00\x00baq\x10c__builtin__\nbytearray\nq\x11h\x08X\x02\x00\x00\x00abq\x12h\n\x86q\x13Rq\x14\x85q\x15Rq\x16u.";
        let e = decode(&with_meta(p2)).unwrap();
        assert_eq!(
            e.metadata.get("s"),
            Some(&Value::List(vec![Value::Str("a".into())]))
        );
        assert_eq!(e.metadata.get("b"), Some(&Value::Bytes(vec![0xff])));
        assert_eq!(e.metadata.get("e"), Some(&Value::Bytes(vec![])));
        assert_eq!(e.metadata.get("ba"), Some(&Value::Bytes(b"ab".to_vec())));
        // Protocol 5: EMPTY_SET/ADDITEMS, FROZENSET, BYTEARRAY8.
        let p5 = b"\x80\x05}(\x8c\x01s\x8f(\x8c\x01a\x8c\x01a\x8c\x01b\x90\x8c\x01f(K\x01K\x02\x91\x8c\x02ba\x96\x02\x00\x00\x00\x00\x00\x00\x00abu.";
        let e = decode(&with_meta(p5)).unwrap();
        assert_eq!(
            e.metadata.get("s"),
            Some(&Value::List(vec![
                Value::Str("a".into()),
                Value::Str("b".into())
            ]))
        );
        assert_eq!(
            e.metadata.get("f"),
            Some(&Value::List(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(e.metadata.get("ba"), Some(&Value::Bytes(b"ab".to_vec())));
        // Protocol 0 with STRING escapes, LONG, FLOAT, GET/PUT, and a repeated key.
        let p0 = b"(dp0\nS'k'\np1\nS'a\\'b\\n\\x41\\101'\np2\nsS'n'\np3\nL-1234567890123456789012345678901234567890L\nsS'f'\nF1e-07\nsg1\nI01\ns.";
        let e = decode(&with_meta(p0)).unwrap();
        let keys: Vec<&str> = e.metadata.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["k", "n", "f"]);
        assert_eq!(e.metadata.get("k"), Some(&Value::Bool(true)));
        assert_eq!(
            e.metadata.get("n"),
            Some(&Value::BigInt(
                "-1234567890123456789012345678901234567890".into()
            ))
        );
        assert_eq!(e.metadata.get("f"), Some(&Value::Float(1e-7)));
        let p0s = b"(dp0\nS'k'\nS'a\\'b\\n\\x41\\101'\ns.";
        let e = decode(&with_meta(p0s)).unwrap();
        assert_eq!(e.metadata.get("k"), Some(&Value::Str("a'b\nAA".into())));
    }

    #[test]
    fn dict_keys_merge_as_python_does() {
        // {1: 'a', True: 'b', 1.0: 'c', (1, 'x'): 'd'} → {1: 'c', (1, 'x'): 'd'}
        let p = b"\x80\x04}(\x8c\x01d}(K\x01\x8c\x01a\x88\x8c\x01bG?\xf0\x00\x00\x00\x00\x00\x00\x8c\x01cK\x01\x8c\x01x\x86\x8c\x01duu.";
        let e = decode(&with_meta(p)).unwrap();
        assert_eq!(
            e.metadata.get("d"),
            Some(&Value::Dict(vec![
                (Value::Int(1), Value::Str("c".into())),
                (
                    Value::Tuple(vec![Value::Int(1), Value::Str("x".into())]),
                    Value::Str("d".into())
                ),
            ]))
        );
        // A list as a key is refused, as Python refuses it.
        let p = b"\x80\x04}(\x8c\x01d}(]\x8c\x01auu.";
        err_of(&with_meta(p));
    }

    #[test]
    fn long_integers() {
        for (bytes, want) in [
            (&b""[..], Value::Int(0)),
            (b"\xff", Value::Int(-1)),
            (b"\x00\x80", Value::Int(-32768)),
            (b"\x00\x80\x00", Value::Int(32768)),
            (
                &[0u8; 12]
                    .iter()
                    .chain(&[0x10u8])
                    .copied()
                    .collect::<Vec<u8>>()[..],
                Value::Int(1 << 100),
            ),
        ] {
            let obj = long_from_le(bytes).unwrap();
            let got = match obj {
                Obj::Int(i) => Value::Int(i),
                Obj::BigInt(d) => Value::BigInt(d),
                _ => unreachable!(),
            };
            assert_eq!(got, want);
        }
        // 2**200 and -(2**200) through LONG1 both ways.
        let big = "1606938044258990275541962092341162602522202993782792835301376";
        for digits in [big.to_string(), format!("-{big}")] {
            let le = decimal_to_le(&digits).unwrap();
            match long_from_le(&le).unwrap() {
                Obj::BigInt(d) => assert_eq!(d, digits),
                other => panic!("{other:?}"),
            }
        }
        for i in [
            0i128,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            i128::MAX,
            i128::MIN,
        ] {
            let le = i128_to_le(i);
            assert!(
                matches!(long_from_le(&le).unwrap(), Obj::Int(j) if j == i),
                "{i}"
            );
            assert_eq!(decimal_to_le(&i.to_string()).unwrap(), le, "{i}");
        }
        // More than 4300 digits is refused, as Python refuses it.
        assert!(long_from_le(&[0x55; 1790]).is_err());
        let mut p = b"\x80\x04}(\x8c\x01n\x8b\x00\x10\x00\x00".to_vec();
        p.extend(std::iter::repeat_n(0x11, 4096));
        p.extend_from_slice(b"u.");
        err_of(&with_meta(&p));
    }

    #[test]
    fn hostile_globals_are_refused_and_named() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"cposix\nsystem\n(S'touch /tmp/pwned'\ntR.", "posix.system"),
            (
                b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x10touch /tmp/pwned\x94\x85\x94R\x94.",
                "posix.system",
            ),
            (b"cos\nsystem\n(S'id'\ntR.", "os.system"),
            (b"cbuiltins\neval\n(S'1'\ntR.", "builtins.eval"),
            (b"c__builtin__\neval\n(S'1'\ntR.", "__builtin__.eval"),
            (b"csubprocess\nPopen\n(S'id'\ntR.", "subprocess.Popen"),
            (b"(S'id'\nios\nsystem\n.", "os.system"),
            (b"\x80\x04\x8c\x02os\x8c\x06system\x93.", "os.system"),
            (b"\x80\x04\x8c\x08builtins\x8c\x07getattr\x93.", "builtins.getattr"),
            (b"\x80\x04\x8c\x15mailman.email.message\x8c\x06config\x93.", "mailman.email.message.config"),
            (b"\x80\x04\x8c\x05email\x8c\x08__file__\x93.", "email.__file__"),
        ];
        for (bytes, name) in cases {
            let e = err_of(bytes);
            assert!(e.message.contains(name), "{name}: {}", e.message);
            assert!(e.message.contains("refused"), "{}", e.message);
        }
        // The same in the metadata pickle.
        let e = err_of(&with_meta(b"cposix\nsystem\n(S'touch /tmp/pwned'\ntR."));
        assert!(
            e.message.contains("metadata pickle refers to posix.system"),
            "{}",
            e.message
        );
        assert!(!Path::new("/tmp/pwned").exists());
    }

    #[test]
    fn hostile_structures_fail_cleanly() {
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", b"".to_vec()),
            ("only a message", b"\x80\x04\x8c\x02hi.".to_vec()),
            ("truncated frame", b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00\x8c\x02hi.".to_vec()),
            ("self-referential list", b"\x80\x02]q\x00h\x00a.".to_vec()),
            (
                "self-referential list in metadata",
                with_meta(b"\x80\x02}q\x00(X\x01\x00\x00\x00lq\x01]q\x02h\x02au."),
            ),
            (
                "dict containing itself",
                with_meta(b"\x80\x02}q\x00X\x01\x00\x00\x00dh\x00s."),
            ),
            (
                "huge BINUNICODE8",
                b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7fhi.".to_vec(),
            ),
            ("huge BINBYTES", b"\x80\x04B\xff\xff\xff\xff.".to_vec()),
            ("huge LONG4", b"\x80\x04\x8b\xff\xff\xff\x7f.".to_vec()),
            ("negative BINSTRING", b"T\xff\xff\xff\xff.".to_vec()),
            ("missing memo", b"\x80\x04h\x05.".to_vec()),
            ("missing memo GET", b"g7\n.".to_vec()),
            ("stack underflow", b"\x80\x04a.".to_vec()),
            ("underflow below mark", b"\x80\x04](K\x01\x86.".to_vec()),
            ("POP on empty", b"0.".to_vec()),
            ("no mark", b"\x80\x04t.".to_vec()),
            ("bad opcode", b"\x80\x04\xff.".to_vec()),
            ("protocol 6", b"\x80\x06N.".to_vec()),
            ("no STOP", b"\x80\x04N".to_vec()),
            ("persistent id", b"P1\n.".to_vec()),
            ("binpersid", b"\x80\x04K\x01Q.".to_vec()),
            ("EXT1", b"\x80\x02\x82\x01.".to_vec()),
            ("EXT4", b"\x80\x02\x84\x01\x00\x00\x00.".to_vec()),
            ("NEXT_BUFFER", b"\x80\x05\x97.".to_vec()),
            ("odd DICT", b"(K\x01d.".to_vec()),
            ("bad UTF-8", b"\x80\x04\x8c\x02\xff\xfe.".to_vec()),
            ("bad escape", b"V\\u12\n.".to_vec()),
            ("unquoted STRING", b"Sabc\n.".to_vec()),
            ("INST of unknown", b"(ifoo\nBar\n.".to_vec()),
            ("OBJ of a builtin", b"\x80\x02(c__builtin__\nset\no.".to_vec()),
            ("NEWOBJ of set", b"\x80\x04\x8c\x08builtins\x8c\x03set\x93)\x81.".to_vec()),
            ("calling object", b"\x80\x02c__builtin__\nobject\n)R.".to_vec()),
            ("BUILD on a list", b"\x80\x04]}b.".to_vec()),
            ("REDUCE on a str", b"\x80\x04\x8c\x01a)R.".to_vec()),
            (
                "_reconstructor with a state",
                b"ccopy_reg\n_reconstructor\n(cemail.message\nMessage\nc__builtin__\nobject\nK\x01tR.".to_vec(),
            ),
            ("message is a dict", b"\x80\x04}.\x80\x04}.".to_vec()),
            ("metadata is a list", b"\x80\x04\x8c\x02hi.\x80\x04].".to_vec()),
            ("metadata key not str", with_meta(b"\x80\x04}K\x01K\x02s.")),
            (
                "message object in metadata",
                with_meta(b"\x80\x04}\x8c\x01m\x8c\x0demail.message\x8c\x07Message\x93)\x81s."),
            ),
            (
                "message part is a str",
                b"\x80\x04\x8c\x0demail.message\x8c\x07Message\x93)\x81}(\x8c\x08_headers](\x8c\x0cContent-Type\x8c\x14multipart/mixed; b=x\x86e\x8c\x08_payload](\x8c\x01xeub.\x80\x04}.".to_vec(),
            ),
        ];
        // Nesting deeper than 64 in metadata.
        let mut deep = b"\x80\x04}\x8c\x01d".to_vec();
        deep.extend(std::iter::repeat_n(b']', 100));
        deep.extend(std::iter::repeat_n(b'a', 99));
        deep.extend_from_slice(b"s.");
        cases.push(("deep nesting", with_meta(&deep)));
        // A message that is its own part.
        cases.push((
            "message containing itself",
            b"\x80\x04\x8c\x0demail.message\x8c\x07Message\x93)\x81\x94}(\x8c\x08_headers](\x8c\x0cContent-Type\x8c\x1bmultipart/mixed; boundary=x\x86e\x8c\x08_payload]h\x00aub.\x80\x04}.".to_vec(),
        ));
        for (name, bytes) in &cases {
            let e = err_of(bytes);
            assert!(!e.message.is_empty(), "{name}");
        }
    }

    #[test]
    fn shared_references_cannot_explode() {
        // l0 = [l1, l1], l1 = [l2, l2], ... 60 levels: 2^60 leaves if expanded.
        let mut p = b"\x80\x04}\x8c\x01x".to_vec();
        p.extend_from_slice(b"\x8c\x04leaf");
        for _ in 0..60 {
            p.extend_from_slice(b"2\x86");
        }
        p.extend_from_slice(b"s.");
        let start = std::time::Instant::now();
        err_of(&with_meta(&p));
        assert!(start.elapsed().as_secs() < 60);
        // The same for message parts: a multipart whose two parts are one multipart...
        let mut m = b"\x80\x04\x8c\x0demail.message\x8c\x07Message\x93\x94".to_vec();
        // memo 0 = class; innermost: a text part with a 1 KiB payload.
        m.extend_from_slice(b"h\x00)\x81}(\x8c\x08_payloadX\x00\x04\x00\x00");
        m.extend(std::iter::repeat_n(b'x', 1024));
        m.extend_from_slice(b"ub");
        for _ in 0..40 {
            m.extend_from_slice(b"\x94h\x00)\x81}(\x8c\x08_headers](\x8c\x0cContent-Type\x8c\x1bmultipart/mixed; boundary=b\x86e\x8c\x08_payload](h");
            let memo = m.iter().filter(|&&b| b == 0x94).count() as u8 - 1;
            m.push(memo);
            m.extend_from_slice(b"2eub");
        }
        m.extend_from_slice(b".\x80\x04}.");
        let start = std::time::Instant::now();
        let e = err_of(&m);
        assert!(e.message.contains("too much"), "{}", e.message);
        assert!(start.elapsed().as_secs() < 60);
    }

    #[test]
    fn emulated_calls_and_wide_objects_stay_cheap() {
        let start = std::time::Instant::now();
        // set(L) over and over on one memoized list of 100,000 items.
        let mut p = b"\x80\x04\x8c\x08builtins\x8c\x03set\x93\x94]\x94(".to_vec();
        p.extend(std::iter::repeat_n(&b"K\x01"[..], 100_000).flatten());
        p.push(b'e');
        p.extend(std::iter::repeat_n(&b"h\x00h\x01\x85R0"[..], 10_000).flatten());
        p.extend_from_slice(b"N.\x80\x04}.");
        let e = err_of(&p);
        assert!(e.message.contains("too much"), "{}", e.message);
        // A message with 100,000 attributes, set by BUILD (no quadratic merging).
        let mut p = b"\x80\x04\x8c\x0demail.message\x8c\x07Message\x93)\x81}(".to_vec();
        for i in 0..100_000 {
            let name = format!("a{i}");
            p.extend_from_slice(&[0x8c, name.len() as u8]);
            p.extend_from_slice(name.as_bytes());
            p.push(b'N');
        }
        p.extend_from_slice(b"ub.\x80\x04}.");
        assert_eq!(decode(&p).unwrap().message, b"\n");
        // Metadata with more keys than anyone writes.
        let mut p = b"\x80\x04\x8c\x02hi.\x80\x04}(".to_vec();
        for i in 0..20_000 {
            let name = format!("k{i}");
            p.extend_from_slice(&[0x8c, name.len() as u8]);
            p.extend_from_slice(name.as_bytes());
            p.push(b'N');
        }
        p.extend_from_slice(b"u.");
        let e = err_of(&p);
        assert!(e.message.contains("keys"), "{}", e.message);
        assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    }

    #[test]
    fn no_panic_on_truncation_or_corruption() {
        let mut files: Vec<Vec<u8>> = Vec::new();
        for name in ["multipart", "plaintext", "types"] {
            files.push(read(Path::new(&format!("{FIXTURES}{name}.pck"))));
        }
        for name in ["p0_folded", "p1_multipart", "p4_mime"] {
            files.push(read(Path::new(&format!("{PICKLES}{name}.pck"))));
        }
        for file in &files {
            for n in 0..file.len() {
                let _ = decode(&file[..n]);
            }
            assert!(decode(&file[..file.len() - 1]).is_err());
            // Deterministic byte corruption.
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..3000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut f = file.clone();
                let at = (seed % f.len() as u64) as usize;
                f[at] = (seed >> 32) as u8;
                let _ = decode(&f);
            }
        }
    }

    /// Differential check against Python's email package on many random files:
    /// `python3 tests/data/pickles/fuzz_messages.py DIR SEED COUNT` (messages, X.eml) or
    /// `python3 tests/data/pickles/fuzz_metadata.py DIR SEED COUNT` (metadata, X.dump),
    /// then `QTOOL_DIFF_DIR=DIR cargo test --lib mailman -- --ignored`.
    #[test]
    #[ignore]
    fn differential_against_python() {
        let Ok(dir) = std::env::var("QTOOL_DIFF_DIR") else {
            eprintln!("QTOOL_DIFF_DIR is not set: nothing to check");
            return;
        };
        let mut bad = Vec::new();
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("pck") {
                continue;
            }
            n += 1;
            let entry = match decode(&read(&path)) {
                Ok(entry) => entry,
                Err(e) => {
                    bad.push(format!("{}: {}", path.display(), e.message));
                    continue;
                }
            };
            let dump_path = path.with_extension("dump");
            if dump_path.exists() {
                if dump(&entry) != show(&read(&dump_path)) {
                    bad.push(format!("{}: metadata differs", path.display()));
                }
            } else if entry.message != read(&path.with_extension("eml")) {
                std::fs::write(path.with_extension("got"), &entry.message).unwrap();
                bad.push(format!("{}: message differs (see .got)", path.display()));
            }
        }
        assert!(
            bad.is_empty(),
            "{} of {n} differ:\n{}",
            bad.len(),
            bad.join("\n")
        );
        eprintln!("{n} files match Python");
    }

    #[test]
    fn looks_like_pickle_cases() {
        assert!(looks_like_pickle(b"\x80\x05\x95"));
        assert!(looks_like_pickle(b"\x80"));
        assert!(!looks_like_pickle(b"\x80\x09"));
        assert!(looks_like_pickle(b"Vfoo"));
        assert!(looks_like_pickle(b"(dp0"));
        assert!(looks_like_pickle(b"ccopy_reg\n"));
        assert!(!looks_like_pickle(b"---\n"));
        assert!(!looks_like_pickle(b""));
        assert!(!looks_like_pickle(b"From: a"));
        for name in ["empty", "plaintext"] {
            let f = read(Path::new(&format!("{FIXTURES}{name}.pck")));
            assert!(looks_like_pickle(&f[..4]));
        }
    }

    // --- header folding details ------------------------------------------------------------

    fn fold(value: &str) -> String {
        let chunks = vec![(
            value.as_bytes().to_vec(),
            if value.is_ascii() {
                Cs::us_ascii()
            } else {
                Cs::utf8()
            },
        )];
        show(&header_encode(&chunks, 9, b" ", b"\n"))
    }

    #[test]
    fn compat32_header_values() {
        assert_eq!(fold(""), "");
        assert_eq!(fold("foo"), "foo");
        assert_eq!(fold("foo "), "foo ");
        assert_eq!(fold(" foo"), " foo");
        assert_eq!(fold("a\n b"), "a\n b");
        assert_eq!(fold("a\r\n\tb"), "a\n\tb");
        assert_eq!(fold("a\n\n b"), "a\n b");
        assert_eq!(fold("a\n   \n b"), "a   \n b");
        assert_eq!(fold("Grüße"), "=?utf-8?b?R3LDvMOfZQ==?=");
        assert_eq!(
            fold("Grüße from the mailing list"),
            "=?utf-8?q?Gr=C3=BC=C3=9Fe_from_the_mailing_list?="
        );
        assert_eq!(fold("x (ü)"), "=?utf-8?b?eCAow7wp?=");
        assert_eq!(fold("€€€"), "=?utf-8?b?4oKs4oKs4oKs?=");
        assert!(embedded_header(b"a\nBcc: x"));
        assert!(!embedded_header(b"a\n Bcc: x"));
        assert!(!embedded_header(b"a\n:"));
    }

    #[test]
    fn boundaries_and_params() {
        assert_eq!(
            get_boundary("multipart/mixed; boundary=\"a b \""),
            Some("a b".into())
        );
        assert_eq!(
            get_boundary("multipart/mixed; BOUNDARY=x;y=z"),
            Some("x".into())
        );
        assert_eq!(
            get_boundary("multipart/mixed; a=\"x;y\"; boundary=q"),
            Some("q".into())
        );
        assert_eq!(
            get_boundary("multipart/mixed;boundary*0=ab;boundary*1=cd"),
            Some("abcd".into())
        );
        assert_eq!(
            get_boundary("multipart/mixed; boundary*=utf-8''%41%42"),
            Some("AB".into())
        );
        assert_eq!(get_boundary("multipart/mixed"), None);
        assert_eq!(
            set_boundary_value("multipart/mixed; charset=us-ascii", "B"),
            "multipart/mixed; charset=\"us-ascii\"; boundary=\"B\""
        );
        let b = make_boundary(&[b"--x".to_vec()], b"\n");
        assert!(b.starts_with("===============") && b.ends_with("=="), "{b}");
        assert_eq!(make_boundary(&[b"--x".to_vec()], b"\n"), b);
        let base = "===============0000000000000000005==";
        assert_eq!(unique_boundary(5, b"a\n--x"), base);
        let text = format!("a\n--{base}\nb\n--{base}.0--\n");
        assert_eq!(unique_boundary(5, text.as_bytes()), format!("{base}.1"));
        assert_eq!(unique_boundary(5, format!("--{base}x").as_bytes()), base);
    }

    // --- encoding --------------------------------------------------------------------------

    fn sample_metadata() -> Metadata {
        let mut m = Metadata::new();
        m.set("listid", Value::Str("test.example.com".into()));
        m.set("zeta", Value::Int(1));
        m.set("alpha", Value::Int(-5));
        m.set(
            "ints",
            Value::List(
                [
                    0i128,
                    255,
                    256,
                    65535,
                    65536,
                    -1,
                    i32::MIN as i128,
                    i32::MAX as i128 + 1,
                    i64::MIN as i128 - 1,
                    i128::MAX,
                    i128::MIN,
                ]
                .into_iter()
                .map(Value::Int)
                .collect(),
            ),
        );
        m.set(
            "big",
            Value::BigInt("-1361129467683753853853498429727072845824".into()),
        );
        m.set("huge", Value::BigInt(format!("1{}", "0".repeat(700))));
        m.set(
            "floats",
            Value::List(vec![
                Value::Float(1e-7),
                Value::Float(0.5),
                Value::Float(-0.0),
                Value::Float(f64::INFINITY),
            ]),
        );
        m.set("none", Value::None);
        m.set("t", Value::Bool(true));
        m.set("f", Value::Bool(false));
        m.set("empty", Value::Str(String::new()));
        m.set("uni", Value::Str("Grüße €\u{1F600}".into()));
        m.set("long", Value::Str("x".repeat(300)));
        m.set("bytes", Value::Bytes(vec![0, 0xff, b'\'']));
        m.set("longbytes", Value::Bytes(vec![7; 300]));
        m.set(
            "tuples",
            Value::List(vec![
                Value::Tuple(vec![]),
                Value::Tuple(vec![Value::Int(1)]),
                Value::Tuple(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
                Value::Tuple(vec![
                    Value::Int(1),
                    Value::Int(2),
                    Value::Int(3),
                    Value::Int(4),
                ]),
            ]),
        );
        m.set(
            "dict",
            Value::Dict(vec![
                (
                    Value::Str("k".into()),
                    Value::List(vec![Value::None, Value::Str("v".into())]),
                ),
                (Value::Int(3), Value::Dict(vec![])),
                (
                    Value::Tuple(vec![Value::Str("a".into())]),
                    Value::List(vec![]),
                ),
            ]),
        );
        m.set("received_time", Value::Float(1733342400.1234567));
        m.set("_parsemsg", Value::Bool(true));
        m
    }

    const MESSAGE: &[u8] =
        b"From: a@example.com\nSubject: Gr\xc3\xbc\xc3\x9fe \xff\xfe\n\nBody \xe2\x82\xac and 8-bit \x80\r\n";

    #[test]
    fn encode_round_trips_through_decode() {
        let meta = sample_metadata();
        let file = encode(MESSAGE, &meta).unwrap();
        assert!(looks_like_pickle(&file));
        let back = decode(&file).unwrap();
        assert_eq!(back.message, MESSAGE);
        assert!(back.message_was_text);
        // Python's len() of the text: one character per byte.
        assert_eq!(back.original_size, Some(MESSAGE.len()));
        assert_eq!(back.metadata, meta);
        // _parsemsg is always written as True, appended when missing.
        let mut m = Metadata::new();
        m.set("_parsemsg", Value::Bool(false));
        m.set("a", Value::Int(1));
        let back = decode(&encode(b"x", &m).unwrap()).unwrap();
        assert_eq!(back.metadata.get("_parsemsg"), Some(&Value::Bool(true)));
        let back = decode(&encode(b"", &Metadata::new()).unwrap()).unwrap();
        assert_eq!(back.message, b"");
        assert_eq!(back.metadata.get("_parsemsg"), Some(&Value::Bool(true)));
        // Refused: unhashable keys, too deep.
        let mut m = Metadata::new();
        m.set("d", Value::Dict(vec![(Value::List(vec![]), Value::None)]));
        assert!(encode(b"x", &m).is_err());
        let mut v = Value::None;
        for _ in 0..100 {
            v = Value::List(vec![v]);
        }
        let mut m = Metadata::new();
        m.set("deep", v);
        assert!(encode(b"x", &m).is_err());
    }

    #[test]
    fn encode_is_read_by_python() {
        let python = std::process::Command::new("python3")
            .arg("--version")
            .output();
        if !python.is_ok_and(|o| o.status.success()) {
            eprintln!("python3 not found: skipping the Python check of encode()");
            return;
        }
        let meta = sample_metadata();
        let file = encode(MESSAGE, &meta).unwrap();
        let dir = std::env::temp_dir().join(format!("qtool-mailman-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("entry.pck");
        std::fs::write(&path, &file).unwrap();
        let script = r#"
import email, pickle, sys
with open(sys.argv[1], 'rb') as fp:
    msg = pickle.load(fp)
    data = pickle.load(fp)
    assert fp.read() == b''
assert isinstance(msg, str), type(msg)
assert msg.encode('ascii', 'surrogateescape') == bytes.fromhex(sys.argv[2]), repr(msg)
assert len(msg) == len(bytes.fromhex(sys.argv[2]))
raw = bytes.fromhex(sys.argv[2])
parsed = email.message_from_string(msg)
body = parsed.get_payload(decode=True)
assert body == raw.split(b'\n\n', 1)[1], body
print(list(data))
for k, v in data.items():
    print(k, repr(v))
"#;
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&path)
            .arg(
                MESSAGE
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            )
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = show(&out.stdout);
        assert!(
            out.status.success(),
            "python3 failed:\n{stdout}\n{}",
            show(&out.stderr)
        );
        let mut lines = stdout.lines();
        let keys: Vec<String> = meta.iter().map(|(k, _)| format!("'{k}'")).collect();
        assert_eq!(lines.next().unwrap(), format!("[{}]", keys.join(", ")));
        for ((k, v), line) in meta.iter().zip(lines) {
            // Python's repr of the value as the crate renders it.
            assert_eq!(line, format!("{k} {}", v.python_repr()), "{k}");
        }
    }
}
