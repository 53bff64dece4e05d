import os
import sys, json, shutil, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import *; from pca import run
d = sys.argv[1]; bpvs = [float(x) for x in sys.argv[2].split(',')]
wfile = sys.argv[3] if len(sys.argv) > 3 else None
tag = sys.argv[4] if len(sys.argv) > 4 else 'u'
meta, (Kb, Vb), ex = load(d); T = meta['T']
infof = f'{d}/cand-info.json'
try: info = json.load(open(infof))
except: info = {}
W = json.load(open(wfile)) if wfile else {}
for a, (Ke, Ve) in ex.items():
    for bpv in bpvs:
        Kr, Vr, by, bits = run(Kb, Vb, Ke, Ve, T, bpv, W.get(a))
        n = f'pca{tag}-{bpv:g}'
        save(d, a, n, Kr, Vr)
        ek = np.linalg.norm(Kr - Ke) / np.linalg.norm(Ke); ev = np.linalg.norm(Vr - Ve) / np.linalg.norm(Ve)
        info.setdefault(a, {})[n] = dict(bytes=by, share_bf16=by / exact_bytes(T, 2), kerr=float(ek), verr=float(ev), bits=bits)
        print(a, n, f'{by / exact_bytes(T, 2):.4f}', bits)
json.dump(info, open(infof, 'w'), indent=1)
