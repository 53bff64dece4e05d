// Number formatting for the UI: 3 significant digits, bytes in binary units.
export { formatBytes } from '../../../shared/format.js';

/** 3 significant digits, no exponent for ordinary magnitudes: 0.00412, 1.23, 1230. */
export function sig3(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e6 || a < 1e-4) return x.toExponential(2);
  if (a >= 1000) return String(Math.round(x));
  return String(Number(x.toPrecision(3)));
}

/** 0.9375 → "93.8%". */
export function percent(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return `${Number((x * 100).toPrecision(3))}%`;
}

/** Whole numbers with thousands separators: 2220608 → "2,220,608". */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 2220608 → "2.22 M". */
export function compactCount(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${sig3(n / 1e9)} B`;
  if (a >= 1e6) return `${sig3(n / 1e6)} M`;
  if (a >= 1e3) return `${sig3(n / 1e3)} k`;
  return String(n);
}

/** Milliseconds for people: "840 ms", "12.3 s", "2 min 5 s". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${sig3(ms / 1000)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms - m * 60_000) / 1000)} s`;
}

/** A token piece made visible: spaces as "·"-free text but newlines and tabs shown. */
export function visiblePiece(piece: string): string {
  return piece.replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}
