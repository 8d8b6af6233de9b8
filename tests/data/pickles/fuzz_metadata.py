#!/usr/bin/env python3
"""Random metadata dicts for the differential test of src/queue/mailman.rs.

Usage: fuzz_metadata.py DIR SEED COUNT. Writes mNNNN.pck (a message str, then a random
metadata dict, at a random protocol 0-5) and mNNNN.dump (Mailman's dump_msgdata of it).
Then: QTOOL_DIFF_DIR=DIR cargo test --lib mailman -- --ignored
"""
import os
import pickle
import random
import sys

out = sys.argv[1]
rnd = random.Random(int(sys.argv[2]))
os.makedirs(out, exist_ok=True)
chars = ['a', 'Z', ' ', "'", '"', '\\', '\n', '\t', '\r', '\x00', '\x7f', 'é', 'ß', '€', '日', '😀', '\x1b']
def rstr():
    return ''.join(rnd.choice(chars) for _ in range(rnd.randint(0, 6)))
def rval(d=0):
    r = rnd.random()
    if d < 4 and r < 0.1: return [rval(d+1) for _ in range(rnd.randint(0, 3))]
    if d < 4 and r < 0.2: return tuple(rval(d+1) for _ in range(rnd.randint(0, 4)))
    if d < 4 and r < 0.3:
        dd = {}
        for _ in range(rnd.randint(0, 3)):
            k = rnd.choice([rstr(), rnd.randint(-5, 5), (1, 'a'), None, 2.5, True])
            dd[k] = rval(d+1)
        return dd
    if r < 0.35: return None
    if r < 0.4: return rnd.choice([True, False])
    if r < 0.55: return rnd.choice([0, 1, -1, 255, 256, 65535, 65536, 2**31, -2**31-1, 2**63, -2**64, 2**127-1, -2**127, 2**128, -2**200, 10**rnd.randint(0, 60) * rnd.choice([1, -1])])
    if r < 0.7: return rnd.choice([0.0, -0.0, 1e-7, 1e16, 1.5, 0.1, 1/3, 1e300, 5e-324, float('inf'), -float('inf'), 123456789.125, rnd.uniform(-1e10, 1e10)])
    if r < 0.9: return rstr()
    return bytes(rnd.randint(0, 255) for _ in range(rnd.randint(0, 5)))
def dump_msgdata(data):
    if not data: return '*Empty*\n'
    keys = [k for k in data if k != 'received_time']
    longest = max(len(k) for k in keys)
    return ''.join('{0:{2}}: {1}\n'.format(k, data[k], longest) for k in sorted(keys))
for i in range(int(sys.argv[3])):
    meta = {('k%d' % j): rval() for j in range(rnd.randint(0, 6))}
    meta['_parsemsg'] = False
    proto = rnd.choice([0, 1, 2, 3, 4, 5])
    data = pickle.dumps('msg', proto) + pickle.dumps(meta, proto)
    open(os.path.join(out, 'm%04d.pck' % i), 'wb').write(data)
    open(os.path.join(out, 'm%04d.dump' % i), 'w').write(dump_msgdata(meta))
