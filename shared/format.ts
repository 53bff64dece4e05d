// Pure formatting helpers shared by main and the renderer (shared/ imports nothing).

const UNITS = ['KiB', 'MiB', 'GiB'] as const;

/**
 * Bytes for people: "512 B", "1.5 KiB", "12.4 MiB", "8.0 GiB" (binary units, one
 * decimal; GiB is the largest unit, so 5 TiB reads "5120.0 GiB"). A value that would
 * round up to 1024 of a unit is shown in the next unit ("1.0 MiB", not "1024.0 KiB").
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return `${n} B`;
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  if (Math.round(v) < 1024) return `${sign}${Math.round(v)} B`;
  let unit = 0;
  v /= 1024;
  while (unit < UNITS.length - 1 && Number(v.toFixed(1)) >= 1024) {
    v /= 1024;
    unit++;
  }
  return `${sign}${v.toFixed(1)} ${UNITS[unit]}`;
}

/** The binary unit a byte axis that reaches `maxBytes` is labelled in. */
function axisUnit(maxBytes: number): { size: number; name: string } {
  const units = [
    { size: 1, name: 'B' },
    { size: 1024, name: 'KiB' },
    { size: 1024 ** 2, name: 'MiB' },
    { size: 1024 ** 3, name: 'GiB' },
  ];
  let u = units[0]!;
  for (const x of units) if (maxBytes >= x.size) u = x;
  return u;
}

/**
 * A byte axis with round ticks in binary units: steps of 1, 2, 2.5 or 5 × 10^k KiB/MiB/GiB
 * (never "976.6 KiB", which is what decimal-nice steps of raw bytes give), from 0 to
 * the first tick at or above `maxBytes`.
 */
export function byteAxis(maxBytes: number, targetTicks = 5): { max: number; interval: number } {
  const m = Number.isFinite(maxBytes) && maxBytes > 0 ? maxBytes : 1;
  const unit = axisUnit(m);
  const inUnit = m / unit.size;
  const raw = inUnit / targetTicks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * pow).find((s) => s >= raw) ?? 10 * pow;
  // Whole bytes below 1 KiB.
  const interval = unit.size === 1 ? Math.max(1, Math.ceil(step)) : step * unit.size;
  return { max: Math.ceil(m / interval - 1e-9) * interval, interval };
}

/** A tick label: "200 KiB", "1.5 MiB", "0" (no ".0" on round values). */
export function formatBytesTick(n: number): string {
  if (n === 0) return '0';
  const unit = axisUnit(Math.abs(n));
  const v = n / unit.size;
  return `${Number(v.toFixed(2))} ${unit.name}`;
}

/** A share for people, the same in the app and the reports: "41%", "4.2%", "0%", "—" where unknown. */
export function formatShare(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return `${(100 * n).toFixed(n < 0.1 && n > 0 ? 1 : 0)}%`;
}
