import os
import json, sys
for d in sys.argv[1:]:
    s = json.load(open(f'{d}/scores.json')); info = json.load(open(f'{d}/cand-info.json'))
    print('==', d)
    names = sorted(info[list(info)[0]], key=lambda n: info[list(info)[0]][n]['share_bf16'])
    for n in names:
        row = f'{n:14s} {info[list(info)[0]][n]["share_bf16"]:6.3f} |'
        for a in s:
            if n in s[a]:
                row += f' {s[a][n]["kl"]:.2e} {s[a][n]["top1"]:.3f} (k{info[a][n]["kerr"]:.3f} v{info[a][n]["verr"]:.3f}) |'
        print(row)
