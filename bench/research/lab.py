import numpy as np, json, os, sys
L, H, HD = 8, 2, 64

def load(d):
    meta = json.load(open(f'{d}/meta.json'))
    T = meta['T']
    def rd(f):
        a = np.fromfile(f, dtype=np.float32).reshape(L, 2, H, T, HD)
        return a[:, 0].copy(), a[:, 1].copy()
    base = rd(f'{d}/base.f32')
    ex = {a: rd(f'{d}/exact-{a}.f32') for a in meta['adapters']}
    return meta, base, ex

def save(d, adapter, name, K, V):
    os.makedirs(f'{d}/cand/{adapter}', exist_ok=True)
    T = K.shape[2]
    out = np.empty((L, 2, H, T, HD), np.float32)
    out[:, 0] = K; out[:, 1] = V
    out.tofile(f'{d}/cand/{adapter}/{name}.f32')

def rope_tables(T, theta=10000.0):
    inv = 1.0 / theta ** (np.arange(0, HD, 2) / HD)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, 1); sin = np.concatenate([np.sin(ang)] * 2, 1)
    return cos, sin
def rot_half(x):
    return np.concatenate([-x[..., HD//2:], x[..., :HD//2]], -1)
def unrope(x, cos, sin):  # x [..., T, HD]; inverse rotation
    return x * cos - rot_half(x) * sin
def rope(x, cos, sin):
    return x * cos + rot_half(x) * sin

# quantizers over the last axis groups. x [..., n]; returns dequantized and bits used (incl. scales fp16? counted as 32 bit fp32)
def q_sym(x, bits, axis=-1, scale_bits=32):
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(x).max(axis=axis, keepdims=True)
    s = amax / qmax
    s[s == 0] = 1
    q = np.clip(np.round(x / s), -qmax, qmax)
    n = x.size; groups = x.size // x.shape[axis]
    return q * s, n * bits + groups * scale_bits

def q_asym(x, bits, axis=-1, scale_bits=32):
    lo = x.min(axis=axis, keepdims=True); hi = x.max(axis=axis, keepdims=True)
    lv = 2 ** bits - 1
    s = (hi - lo) / lv
    s[s == 0] = 1
    q = np.clip(np.round((x - lo) / s), 0, lv)
    n = x.size; groups = x.size // x.shape[axis]
    return q * s + lo, n * bits + groups * 2 * scale_bits

def exact_bytes(T, bpv=2):
    return L * 2 * H * T * HD * bpv
