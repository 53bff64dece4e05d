import os
import sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import *
d = sys.argv[1]
meta, (Kb, Vb), ex = load(d)
T = meta['T']; cos, sin = rope_tables(T)
for a, (Ke, Ve) in ex.items():
    dK, dV = Ke - Kb, Ve - Vb
    dKp = unrope(dK, cos, sin)
    print('==', a)
    for l in range(L):
        row = f'L{l} '
        for nm, X in (('Kpost', dK), ('Kpre', dKp), ('V', dV)):
            M = X[l].transpose(1, 0, 2).reshape(T, H * HD)
            S = np.linalg.svd(M, compute_uv=False)
            e = np.cumsum(S**2) / np.sum(S**2)
            # rank needed for 90/99% energy
            r90 = int(np.searchsorted(e, 0.9)) + 1; r99 = int(np.searchsorted(e, 0.99)) + 1
            row += f'{nm}: n={np.linalg.norm(M):7.1f} r90={r90:3d} r99={r99:3d} | '
        print(row)
