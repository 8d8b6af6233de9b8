"""GNU Mailman 3's side of bench/run. Runs inside the Mailman virtualenv.

    python mailman_helper.py VAR_DIR

Initialises Mailman for real (``mailman.core.initialize.initialize``) with a minimal
``mailman.cfg`` written into VAR_DIR (SQLite database there, the null MTA, layout
``bench``), creates the domain ``example.com`` and the list ``test@example.com``, then
answers one JSON request per line on stdin with one JSON line on stdout.

Every timed section reports ``wall`` (time.perf_counter) and ``cpu``
(time.process_time) of this process around the Mailman calls only: the interpreter's
start, the imports and the parsing of the messages into
``mailman.email.message.Message`` objects are *not* timed (they happen once, before).
That favours Mailman.

Requests (``{"op": ..., ...}``):

- ``load``      {"name", "files"}: parse each file into a Message (untimed), keep them.
- ``enqueue``   {"name", "dir"}: the timed loop ``Switchboard.enqueue(msg, listid=...)``
                (Mailman fsyncs each file; it does not sync the directory).
- ``populate``  {"name", "dir"}: the same loop with ``os.fsync`` disabled, then
                ``os.sync()`` (setup for the drains and the listing; untimed).
- ``runner``    {"dir", "forward": DIR or null}: a real ``mailman.core.runner.Runner``
                subclass whose ``_dispose`` does nothing (or enqueues to a switchboard
                on DIR, as Mailman's pipeline runner does to ``out``): construct it (which
                recovers ``.bak`` files, as a runner's start does) and run
                ``_one_iteration()`` once -- files, dequeue, list lookup in the
                database, language, ``_dispose``, finish, ``config.db.commit()``.
- ``bare``      {"dir"}: the bare switchboard loop, ``for fb in sb.files: sb.dequeue(fb);
                sb.finish(fb)`` (no database, no language).
- ``list``      {"dir"}: what a Mailman ``list --format json`` would have to do:
                ``sb.files``, unpickle both pickles of each entry, pick listid, From and
                Subject, ``json.dumps`` the rows.
- ``stats``     {"dir"}: ``sb.files`` and the size of each file.
"""

import email
import json
import os
import pickle
import sys
import time

LISTID = 'test.example.com'

CFG = """\
[mailman]
layout: bench
site_owner: bench@example.com

[paths.bench]
var_dir: {var}

[mta]
incoming: mailman.mta.null.NullMTA
"""


def init(var_dir):
    os.makedirs(var_dir, exist_ok=True)
    cfg = os.path.join(var_dir, 'mailman.cfg')
    with open(cfg, 'w') as fp:
        fp.write(CFG.format(var=var_dir))
    from mailman.core.initialize import initialize
    initialize(cfg)
    from mailman.config import config
    from mailman.app.lifecycle import create_list
    from mailman.interfaces.domain import IDomainManager
    from mailman.interfaces.listmanager import IListManager
    from zope.component import getUtility
    if getUtility(IListManager).get_by_list_id(LISTID) is None:
        if getUtility(IDomainManager).get('example.com') is None:
            getUtility(IDomainManager).add('example.com')
        create_list('test@example.com')
        config.db.commit()
    return config


def main():
    config = init(os.path.abspath(sys.argv[1]))
    from mailman.core.runner import Runner
    from mailman.core.switchboard import Switchboard
    from mailman.email.message import Message

    class DiscardRunner(Runner):
        def _dispose(self, mlist, msg, msgdata):
            return False

    class ForwardRunner(Runner):
        target = None

        def _dispose(self, mlist, msg, msgdata):
            self.target.enqueue(msg, msgdata)
            return False

    messages = {}

    def timed(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        extra = fn()
        out = {'wall': time.perf_counter() - w0, 'cpu': time.process_time() - c0}
        out.update(extra or {})
        return out

    def op_load(name, files):
        msgs = []
        for path in files:
            with open(path, 'rb') as fp:
                msgs.append(email.message_from_binary_file(fp, Message))
        messages[name] = msgs
        return {'count': len(msgs)}

    def op_enqueue(name, dir):
        sb = Switchboard('in', dir)
        msgs = messages[name]

        def loop():
            for msg in msgs:
                sb.enqueue(msg, listid=LISTID)
            return {'count': len(msgs)}
        return timed(loop)

    def op_populate(name, dir):
        sb = Switchboard('in', dir)
        real = os.fsync
        os.fsync = lambda fd: None
        try:
            for msg in messages[name]:
                sb.enqueue(msg, listid=LISTID)
        finally:
            os.fsync = real
        os.sync()
        return {'count': len(messages[name])}

    def op_runner(dir, forward=None):
        def run():
            if forward:
                runner = ForwardRunner('in')
                runner.target = Switchboard('out', forward)
            else:
                runner = DiscardRunner('in')
            # Runner.__init__ made the switchboard of [runner.in] under var_dir; point
            # it at the benchmark's directory, recovering as a runner's start does.
            runner.switchboard = Switchboard('in', dir, None, 1, True)
            return {'count': runner._one_iteration()}
        return timed(run)

    def op_bare(dir):
        def run():
            sb = Switchboard('in', dir, None, 1, True)
            n = 0
            for fb in sb.files:
                sb.dequeue(fb)
                sb.finish(fb)
                n += 1
            return {'count': n}
        return timed(run)

    def op_list(dir):
        def run():
            sb = Switchboard('in', dir)
            rows = []
            for fb in sb.files:
                with open(os.path.join(dir, fb + '.pck'), 'rb') as fp:
                    msg = pickle.load(fp)
                    data = pickle.load(fp)
                if data.get('_parsemsg'):
                    msg = email.message_from_string(msg, Message)
                rows.append({'queue': 'in', 'filebase': fb,
                             'listid': data.get('listid'),
                             'from': msg['from'], 'subject': msg['subject']})
            text = json.dumps(rows, indent=2)
            return {'count': len(rows), 'bytes': len(text)}
        return timed(run)

    def op_stats(dir):
        def run():
            sb = Switchboard('in', dir)
            files = sb.files
            size = sum(os.path.getsize(os.path.join(dir, fb + '.pck'))
                       for fb in files)
            return {'count': len(files), 'bytes': size}
        return timed(run)

    ops = {'load': op_load, 'enqueue': op_enqueue, 'populate': op_populate,
           'runner': op_runner, 'bare': op_bare, 'list': op_list,
           'stats': op_stats}
    print(json.dumps({'ready': True, 'mailman': mailman_version()}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        op = req.pop('op')
        try:
            res = ops[op](**req)
        except Exception as e:  # report, keep serving
            res = {'error': '{}: {}'.format(type(e).__name__, e)}
        print(json.dumps(res), flush=True)


def mailman_version():
    from mailman.version import VERSION
    return VERSION


if __name__ == '__main__':
    main()
