import json,sys
for f in sys.argv[1:]:
    s=json.load(open(f))
    for k in ['fourStrategies','allStrategies']:
        v=s.get(k)
        if v: print(f.split('/')[-1], k, round(v['seconds'],3), [round(x,3) for x in v.get('runs',[])], {a:round(b*1000,1) for a,b in v['stages'].items()}, 'step', round(v.get('decodeStepMs') or 0,2))
