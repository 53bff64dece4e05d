import os
import sys, json, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import *
d = sys.argv[1]
meta, (Kb, Vb), ex = load(d)
T = meta['T']
info = {}
for a, (Ke, Ve) in ex.items():
    dK, dV = Ke - Kb, Ve - Vb
    res = {}
    res['base'] = (Kb, Vb, 0)
    for bits in (8, 4, 3, 2):
        qk, bk = q_sym(dK, bits); qv, bv = q_sym(dV, bits)
        res[f'tok-sym{bits}'] = (Kb + qk, Vb + qv, (bk + bv) / 8)
        qk, bk = q_asym(dK, bits); qv, bv = q_asym(dV, bits)
        res[f'tok-asym{bits}'] = (Kb + qk, Vb + qv, (bk + bv) / 8)
    # KIVI: K per channel over groups of G tokens, V per token
    for bits in (2, 3):
        G = 32
        g = dK.reshape(L, H, T // G, G, HD)
        qk, bk = q_asym(g, bits, axis=3)
        qv, bv = q_asym(dV, bits)
        res[f'kivi{bits}'] = (Kb + qk.reshape(dK.shape), Vb + qv, (bk + bv) / 8)
    # last 64 exact
    K2, V2 = Kb.copy(), Vb.copy(); K2[:, :, -64:] = Ke[:, :, -64:]; V2[:, :, -64:] = Ve[:, :, -64:]
    res['last64'] = (K2, V2, L * 2 * H * 64 * HD * 2)
    # lowrank per layer over [T, H*HD]
    for k in (8, 16, 32):
        Kr, Vr = Kb.copy(), Vb.copy()
        for l in range(L):
            for X, dst in ((dK, Kr), (dV, Vr)):
                M = X[l].transpose(1, 0, 2).reshape(T, H * HD)
                U, S, Wt = np.linalg.svd(M, full_matrices=False)
                R = (U[:, :k] * S[:k]) @ Wt[:k]
                dst[l] += R.reshape(T, H, HD).transpose(1, 0, 2)
        res[f'lowrank{k}'] = (Kr, Vr, L * 2 * (T + H * HD) * k * 4)
    for n, (K, V, b) in res.items():
        save(d, a, n, K, V)
        ek = np.linalg.norm(K - Ke) / np.linalg.norm(Ke); ev = np.linalg.norm(V - Ve) / np.linalg.norm(Ve)
        info.setdefault(a, {})[n] = dict(bytes=b, share_bf16=b / exact_bytes(T, 2), kerr=float(ek), verr=float(ev))
json.dump(info, open(f'{d}/cand-info.json', 'w'), indent=1)
