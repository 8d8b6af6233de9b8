#!/usr/bin/env python3
"""Random email messages for the differential test of src/queue/mailman.rs.

Usage: fuzz_messages.py DIR SEED COUNT. Writes cNNNN.pck (a random message: folded,
non-ASCII and empty headers, Header objects in several charsets, nested multiparts,
message/rfc822, delivery-status, 8-bit messages read from bytes; pickled at a random
protocol 0-5, then a metadata dict) and cNNNN.eml: what qtool must produce, which is
msg.as_string() as UTF-8, or for messages holding surrogate escapes what
BytesGenerator(mangle_from_=False, maxheaderlen=0) writes.
Then: QTOOL_DIFF_DIR=DIR cargo test --lib mailman -- --ignored
"""
import email
import io
import os
import pickle
import random
import sys
from email.generator import BytesGenerator
from email.header import Header
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart
from email.mime.message import MIMEMessage
from email.mime.application import MIMEApplication
from email.utils import _has_surrogates

out = sys.argv[1]
rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
os.makedirs(out, exist_ok=True)

words = ['hello', 'Grüße', 'café', '€uro', '日本語', 'a,b', '(paren)', 'back\\slash', '"q"', "it's",
         '=?utf-8?q?x?=', 'x' * 90, '', ' ', 'tab\there', '😀', 'naïve;', 'a=b', 'Ünïcödé']
def rword():
    return rnd.choice(words)
def rvalue(allow_nonascii=True):
    n = rnd.randint(0, 5)
    parts = []
    for i in range(n):
        w = rword()
        if not allow_nonascii and not w.isascii(): w = 'ascii'
        parts.append(w)
        parts.append(rnd.choice([' ', '  ', '\n ', '\n\t', '\r\n ', ' ', '', '\t']))
    v = ''.join(parts)
    return v

def rheaders(msg, allow_nonascii=True):
    for i in range(rnd.randint(0, 6)):
        name = rnd.choice(['Subject', 'From', 'X-Test', 'To', 'Comments', 'X-Ü'] if allow_nonascii else ['Subject', 'From', 'X-Test'])
        kind = rnd.random()
        if kind < 0.6:
            v = rvalue(allow_nonascii)
            # Python refuses embedded headers; keep continuation lines whitespace-led
            msg._headers.append((name, v))
        else:
            h = Header(header_name=name, continuation_ws=rnd.choice([' ', '\t']))
            for j in range(rnd.randint(0, 3)):
                cs = rnd.choice(['us-ascii', 'utf-8', 'iso-8859-1', None])
                w = rword()
                if cs in ('us-ascii', None) and not w.isascii(): w = 'plain'
                if cs == 'iso-8859-1':
                    try: w.encode('latin-1')
                    except UnicodeError: w = 'café'
                h.append(w + rnd.choice(['', ' ', '\n x']), cs)
            msg._headers.append((name, h))

def rtext():
    return ''.join(rnd.choice(['line', 'Grüße', '\n', '\r\n', '\r', ' ', 'From x', '.', '€']) for _ in range(rnd.randint(0, 12)))

def rmsg(depth=0):
    r = rnd.random()
    if depth < 3 and r < 0.3:
        m = MIMEMultipart(rnd.choice(['mixed', 'alternative', 'signed', 'digest']), boundary=rnd.choice(['B%d' % depth, '"q b"', 'x;y', None]) if rnd.random() < 0.9 else None)
        if m.get_boundary() is None:
            m.set_boundary('gen%d' % depth)
        for i in range(rnd.randint(0, 3)):
            m.attach(rmsg(depth + 1))
        m.preamble = rnd.choice([None, '', 'pre', 'pre\n', 'a\r\nb\n\n'])
        m.epilogue = rnd.choice([None, '', 'epi', 'epi\n', '\n'])
    elif depth < 3 and r < 0.4:
        m = MIMEMessage(rmsg(depth + 1))
    elif r < 0.5:
        m = MIMEText(rtext(), rnd.choice(['plain', 'html']), 'utf-8')
    else:
        m = email.message.Message()
        m.set_payload(rnd.choice([None, rtext(), 'plain text\n']))
        if rnd.random() < 0.3:
            m['Content-Type'] = rnd.choice(['text/plain', 'application/octet-stream', 'message/delivery-status', 'TEXT/PLAIN; charset=utf-8', 'bogus', 'a/b/c'])
            if m.get_content_type() == 'message/delivery-status':
                p = email.message.Message(); p['A'] = 'b'
                q = email.message.Message(); q['C'] = 'd'; q.set_payload('body')
                m.set_payload([p, q])
    rheaders(m)
    return m

def bytes_msg():
    raw = b'From: a@example.com\nSubject: ' + bytes(rnd.choice([b'Gr\xfc\xdfe', b'caf\xc3\xa9', b'plain'])) + b'\nX-Fold: a\n \xff b\nContent-Type: ' + rnd.choice([b'text/plain; charset=latin-1', b'text/plain', b'multipart/mixed; boundary=zz']) + b'\n\n'
    if b'multipart' in raw:
        raw += b'pre \xe9\n--zz\nContent-Type: text/plain\n\n\xe9t\xe9\r\n--zz\n\nsecond \xff\n--zz--\nepi \xfe\n'
    else:
        raw += b'body \xe9\xff\r\nline\n'
    return email.message_from_bytes(raw)

count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
made = 0
for i in range(count):
    if rnd.random() < 0.15:
        m = bytes_msg()
    else:
        m = rmsg()
    try:
        surro = any(isinstance(v, str) and _has_surrogates(v) for part in m.walk() for k, v in part._headers) or any(isinstance(part._payload, str) and _has_surrogates(part._payload) for part in m.walk())
        if surro:
            fp = io.BytesIO()
            BytesGenerator(fp, mangle_from_=False, maxheaderlen=0).flatten(m)
            want = fp.getvalue()
        else:
            want = m.as_string().encode('utf-8')
    except Exception:
        continue  # e.g. Python refuses a header with an embedded header line
    proto = rnd.choice([0, 1, 2, 3, 4, 5])
    data = pickle.dumps(m, proto) + pickle.dumps({'version': 3}, proto)
    name = os.path.join(out, 'c%04d' % i)
    open(name + '.pck', 'wb').write(data)
    open(name + '.eml', 'wb').write(want)
    made += 1
print('made', made)
