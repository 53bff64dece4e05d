import os
# transform coding of pre-RoPE dK and dV per layer: PCA basis, per-column uniform quantizer, reverse water-filling bits
import sys, json, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import *

def quant_col(x, b):  # x [T]; midrise uniform quantizer, 2^b levels, MSE-searched step; returns dequantized
    if b == 0: return np.zeros_like(x)
    s = x.std() + 1e-12
    best = None
    for a in np.linspace(0.3, 4.5, 43):
        lv = 2 ** b
        step = 2 * a * s / lv
        q = np.clip(np.floor(x / step), -lv // 2, lv // 2 - 1) + 0.5
        y = q * step
        e = np.sum((y - x) ** 2)
        if best is None or e < best[0]: best = (e, y)
    return best[1]

def tc_layer(M, theta, maxb=8, kmax=128):
    # M [T, D]; returns reconstruction, bits used (payload), k
    U, S, Wt = np.linalg.svd(M, full_matrices=False)
    C = U * S  # coefficients [T, r]
    var = (S ** 2) / M.shape[0]
    bits = np.clip(np.round(0.5 * np.log2(np.maximum(var / theta, 1e-30))), 0, maxb).astype(int)
    bits[kmax:] = 0
    k = int(np.sum(bits > 0))
    R = np.zeros_like(M)
    Cq = np.zeros_like(C)
    for j in range(len(bits)):
        if bits[j] > 0: Cq[:, j] = quant_col(C[:, j], bits[j])
    R = Cq @ Wt
    payload = M.shape[0] * bits.sum() + k * (M.shape[1] * 16 + 32)  # basis fp16 + per-col scale
    return R, payload, bits

if __name__ == '__main__':
    d = sys.argv[1]; thetas = [float(x) for x in sys.argv[2].split(',')]
    meta, (Kb, Vb), ex = load(d)
    T = meta['T']; cos, sin = rope_tables(T)
    info = json.load(open(f'{d}/cand-info.json'))
    for a, (Ke, Ve) in ex.items():
        dK, dV = Ke - Kb, Ve - Vb
        dKp = unrope(dK, cos, sin)
        for th in thetas:
            Kr, Vr = Kb.copy(), Vb.copy(); tot = 0; desc = []
            for l in range(L):
                for which, X in (('K', dKp), ('V', dV)):
                    M = X[l].transpose(1, 0, 2).reshape(T, H * HD)
                    if np.abs(M).max() == 0: continue
                    R, p, bits = tc_layer(M, th)
                    tot += p
                    R = R.reshape(T, H, HD).transpose(1, 0, 2)
                    if which == 'K': Kr[l] += rope(R, cos, sin)
                    else: Vr[l] += R
                    desc.append(int(bits.sum()))
            name = f'tc-{th:g}'
            save(d, a, name, Kr, Vr)
            b = tot / 8
            ek = np.linalg.norm(Kr - Ke) / np.linalg.norm(Ke); ev = np.linalg.norm(Vr - Ve) / np.linalg.norm(Ve)
            info[a][name] = dict(bytes=b, share_bf16=b / exact_bytes(T, 2), kerr=float(ek), verr=float(ev), bits=desc)
            print(a, name, f'{b / exact_bytes(T, 2):.3f}', desc)
    json.dump(info, open(f'{d}/cand-info.json', 'w'), indent=1)
