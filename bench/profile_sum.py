"""Sums the CUDA op profile (ADAPTERLENS_CUDA_PROFILE=1 lines) read on stdin: per job kind, how
many jobs and the total milliseconds of each op category, largest first. Used by
bench/run-on-device.sh on the warm all-strategies run."""
import collections
import re
import sys

jobs = collections.Counter()
cats = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    m = re.match(r'\[cuda profile\] (.+?): (.*)$', line.strip())
    if not m:
        continue
    job, rest = m.groups()
    jobs[job] += 1
    for part in rest.split(' · '):
        mm = re.match(r'(.+?) ([\d.]+) ms$', part.strip())
        if mm and mm.group(1) != 'total':
            cats[job][mm.group(1)] += float(mm.group(2))
for job, n in sorted(jobs.items(), key=lambda kv: -sum(cats[kv[0]].values())):
    total = sum(cats[job].values())
    parts = ', '.join(f'{c} {v:.1f}' for c, v in cats[job].most_common())
    print(f'  {job:<28} ×{n:<4} {total:8.1f} ms  ({parts})')
