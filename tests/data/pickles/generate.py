#!/usr/bin/env python3
"""Writes the extra Mailman-style queue files that src/queue/mailman.rs tests.

Each case X gets X.pck (the message pickle, then the metadata pickle, as Mailman's
Switchboard.enqueue writes them), X.eml (the message bytes qtool must produce) and X.dump
(Mailman's dump_msgdata of the metadata as dequeue returns it, so with original_size for
text entries). Run from anywhere with Python 3: `python3 generate.py`. Only the standard
email package is needed (no Mailman).

Expected message bytes: msg.as_string() encoded as UTF-8, except for messages holding
undecodable 8-bit bytes (surrogate escapes), where qtool writes the bytes back as
BytesGenerator(fp, mangle_from_=False, maxheaderlen=0) does. A multipart without a boundary gets a random one from Python and a
generated one from qtool: its .eml says @@BOUNDARY@@ where the boundary goes.
"""

import email
import email.policy
import io
import os
import pickle
import sys
import types
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

HERE = os.path.dirname(os.path.abspath(__file__))

# Stand-ins for Mailman's classes, so that the pickles name them as Mailman's do
# (`mailman.email.message.UserNotification`, ...) without Mailman installed.
for name in ('mailman', 'mailman.email', 'mailman.email.message'):
    sys.modules.setdefault(name, types.ModuleType(name))
mm = sys.modules['mailman.email.message']


class MMMessage(Message):
    pass


class UserNotification(MMMessage):
    pass


class MultipartDigestMessage(MIMEMultipart, MMMessage):
    pass


for cls, name in ((MMMessage, 'Message'), (UserNotification, 'UserNotification'),
                  (MultipartDigestMessage, 'MultipartDigestMessage')):
    cls.__module__ = 'mailman.email.message'
    cls.__name__ = cls.__qualname__ = name
    setattr(mm, name, cls)


def dump_msgdata(data):
    if not data:
        return '*Empty*\n'
    keys = [k for k in data if k != 'received_time']
    longest = max(len(k) for k in keys)
    return ''.join('{0:{2}}: {1}\n'.format(k, data[k], longest) for k in sorted(keys))


def write(name, msg, meta, proto, meta_proto=None, expected=None):
    meta_proto = proto if meta_proto is None else meta_proto
    data = pickle.dumps(msg, proto) + pickle.dumps(meta, meta_proto)
    if isinstance(msg, str):
        text = msg.encode('utf-8', 'surrogateescape')
        meta = dict(meta, original_size=len(msg))
    elif expected is not None:
        text = expected
    else:
        text = msg.as_string().encode('utf-8')
    for ext, content in (('.pck', data), ('.eml', text), ('.dump', dump_msgdata(meta).encode())):
        with open(os.path.join(HERE, name + ext), 'wb') as fp:
            fp.write(content)


# Protocol 0 (copyreg._reconstructor, text opcodes): folded headers, CRLF body, a metadata
# dict with most value types.
msg = email.message_from_string(
    'From: Anne Person <anne@example.com>\n'
    'To: a@example.com,\n'
    '\tb@example.com,\n'
    '    c@example.com\n'
    'Subject: a rather long subject line that the sender folded\n'
    ' onto a second line\n'
    'X-Empty:\n'
    'X-Trailing: value with a trailing space \n'
    'X-Backslash: C:\\path\\to "quoted" \'single\'\n'
    '\n'
    'First line.\r\n'
    'Second line.\r'
    'Third line.\n'
    'From the start of a line, not mangled.\n')
meta = {
    'listid': 'test.example.com', 'version': 3, '_parsemsg': False,
    'tiny': 1e-07, 'big': 2 ** 100, 'negbig': -2 ** 70, 'i64': 2 ** 63, 'neg': -1,
    'nothing': None, 'empty': '', 'tup': ('a', 1, (2.5, None)), 'one': ('x',),
    'nested': {'l': [1, [2, [3]]], 't': ()}, 'uni': 'Grüße €', 'flag': True,
    'received_time': 1733342400.1234567,
}
write('p0_folded', msg, meta, 0)

# Protocol 1 (binary opcodes, still copyreg): nested multipart with an attached message,
# metadata rewritten at protocol 1 as Mailman's recover_backup_files does.
inner = email.message_from_string(
    'From: b@example.com\nSubject: inner\n\nThe attached message.\n')
alt = email.message_from_string(
    'Content-Type: multipart/alternative; boundary="alt-b"\n\n'
    '--alt-b\nContent-Type: text/plain\n\nplain\n'
    '--alt-b\nContent-Type: text/html\n\n<p>html</p>\n'
    '--alt-b--\n')
outer = email.message_from_string(
    'From: a@example.com\nMIME-Version: 1.0\n'
    'Content-Type: multipart/mixed;\n boundary="=-=outer=-="\n\n'
    '--=-=outer=-=\nContent-Type: text/plain\n\nintro\n'
    '--=-=outer=-=--\n')
outer.attach(alt)
outer.attach(MIMEMessage(inner))
outer.epilogue = ''
meta = {'listid': 'x.example.com', 'version': 3, '_parsemsg': False, '_bak_count': 1,
        'raw': b'\x00\xffab\'"', 'floats': [0.1, 1e16, -0.0, 1.5e-300, float('inf')],
        'ints': [0, 255, 256, 65535, 65536, -2 ** 31, 2 ** 31, -2 ** 63 - 1]}
write('p1_multipart', outer, meta, 1)

# Protocol 2: non-ASCII header values (as_string encodes them as RFC 2047 words),
# UTF-8 body text.
msg = email.message_from_string(
    'From: Jürgen Groß <jg@example.com>\n'
    'Subject: Grüße  from\n'
    '  the list\n'
    'X-Euro: €€€ and (comment)\n'
    'Content-Type: text/plain; charset="utf-8"\n'
    'Content-Transfer-Encoding: 8bit\n'
    '\n'
    'Grüße aus München.\n')
write('p2_nonascii', msg, {'version': 3, '_parsemsg': False, 'd': {'k': 'v', 1: 2}}, 2)

# Protocol 4: programmatically built MIME objects with Header objects in several
# charsets and a Charset object in _charset.
root = MIMEMultipart(boundary='XYZ')
subject = Header('[list] ', 'us-ascii', header_name='Subject')
subject.append('Grüße', 'utf-8')
subject.append(' end', 'us-ascii')
root['Subject'] = subject
root['X-Latin'] = Header('café crème', 'iso-8859-1', header_name='X-Latin')
root['X-Plain'] = Header('plain (ascii) text', header_name='X-Plain')
root.preamble = 'This is a MIME message.'
root.attach(MIMEText('hello €\n', 'plain', 'utf-8'))
root.attach(MIMEText('café\n', 'plain', 'iso-8859-1'))
write('p4_mime', root, {'version': 3, '_parsemsg': False, 'recipients': ['a@x', 'b@x']}, 4)

# Protocol 5: a delivery status notification (multipart/report, message/delivery-status).
dsn = email.message_from_string(
    'From: MAILER-DAEMON@example.com\n'
    'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\n\n'
    '--dsn\nContent-Type: text/plain\n\nDelivery failed.\n'
    '--dsn\nContent-Type: message/delivery-status\n\n'
    'Reporting-MTA: dns; example.com\n\n'
    'Final-Recipient: rfc822; nobody@example.com\nAction: failed\nStatus: 5.1.1\n\n'
    '--dsn--\n')
write('p5_dsn', dsn, {'version': 3, '_parsemsg': False}, 5)

# Protocol 5: a message read from bytes with undecodable 8-bit data: qtool restores the
# original bytes (as BytesGenerator does) instead of as_string()'s re-encoding.
raw = (b'From: a@example.com\n'
       b'Subject: Gr\xfc\xdfe\n'
       b'Content-Type: text/plain; charset=latin-1\n'
       b'\n'
       b'Gr\xfc\xdfe aus M\xfcnchen.\n')
msg = email.message_from_bytes(raw)
fp = io.BytesIO()
BytesGenerator(fp, mangle_from_=False, maxheaderlen=0).flatten(msg)
assert fp.getvalue() == raw
write('p5_bytes', msg, {'version': 3, '_parsemsg': False}, 5, expected=fp.getvalue())

# Protocol 0 text: Mailman's _plaintext entries (the message as a str, _parsemsg True),
# with characters raw-unicode-escape has to escape.
text = ('From: a@example.com\nSubject: back\\slash \u20ac \u00e9\n\n'
        'Body with \U0001F600 and an escaped byte \udcff.\r\n')
meta = {'listid': 'test.example.com', 'version': 3, '_parsemsg': True,
        'big': 10 ** 30, 'f': 2.5, 'tup': (1, 'two'), 'none': None, 'no': False}
write('p0_text', text, meta, 0)

# A multipart without a boundary (as Mailman's digests are before they are flattened).
digest = MultipartDigestMessage()
digest['Subject'] = 'Digest'
digest.attach(MIMEText('one\n'))
digest.attach(MIMEText('two\n'))
text = digest.as_string()
boundary = digest.get_boundary()
del digest['Content-Type']
digest['Content-Type'] = 'multipart/mixed'
# Put the header back where MIMEMultipart had it so the order matches.
headers = [(k, v) for k, v in digest._headers if k != 'Content-Type']
digest._headers = [('Content-Type', 'multipart/mixed')] + headers
write('p4_noboundary', digest, {'version': 3, '_parsemsg': False}, 4,
      expected=text.replace(boundary, '@@BOUNDARY@@').encode())

# What Mailman's UserNotification builds: a Header subject in the list's charset, the
# body set with that charset (a Charset in _charset), a set of recipients as attribute.
note = UserNotification()
note.set_payload('Ihre Anfrage wurde bearbeitet. Grüße\n'.encode('iso-8859-1'), 'iso-8859-1')
note['Subject'] = Header('Ihre Anfrage: Grüße', 'iso-8859-1', header_name='Subject')
note['From'] = 'list-owner@example.com'
note['To'] = 'anne@example.com'
note.recipients = {'anne@example.com'}
note._sender = 'list-owner@example.com'
write('p5_notification', note, {'listid': 'test.example.com', 'nodecorate': True,
      'recipients': ['anne@example.com'], 'reduced_list_headers': True, 'version': 3,
      '_parsemsg': False}, 5)

# Protocol 3, with a policy whose line separator is CRLF (as_string honours it).
msg = email.message_from_string('From: a@example.com\nSubject: crlf\n\nline 1\nline 2\n')
msg.policy = email.policy.compat32.clone(linesep='\r\n')
write('p3_crlf', msg, {'version': 3, '_parsemsg': False, 'when': 1.5}, 3)
