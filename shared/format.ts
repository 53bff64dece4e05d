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
