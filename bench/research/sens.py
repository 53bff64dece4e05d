import sys, json, numpy as np, shutil, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import *
from tc import tc_layer
d = sys.argv[1]; th = float(sys.argv[2])
meta, (Kb, Vb), ex = load(d)
T = meta['T']; cos, sin = rope_tables(T)
shutil.rmtree(f'{d}/cand', ignore_errors=True)
info = {}
for a, (Ke, Ve) in ex.items():
    dK, dV = Ke - Kb, Ve - Vb
    dKp = unrope(dK, cos, sin)
    for l in range(L):
        for which, X in (('K', dKp), ('V', dV)):
            M = X[l].transpose(1, 0, 2).reshape(T, H * HD)
            if np.abs(M).max() == 0: continue
            R, p, bits = tc_layer(M, th)
            R = R.reshape(T, H, HD).transpose(1, 0, 2)
            Kr, Vr = Ke.copy(), Ve.copy()
            if which == 'K': Kr[l] = Kb[l] + rope(R, cos, sin); err = np.sum((Kr[l]-Ke[l])**2)
            else: Vr[l] = Vb[l] + R; err = np.sum((Vr[l]-Ve[l])**2)
            save(d, a, f'{which}{l}', Kr, Vr)
            info.setdefault(a, {})[f'{which}{l}'] = dict(bytes=p/8, share_bf16=0, kerr=0, verr=0, sq=float(err), bits=int(bits.sum()))
json.dump(info, open(f'{d}/cand-info.json', 'w'), indent=1)
