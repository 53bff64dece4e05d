// Where Tab goes inside a modal: past the last control back to the first (Shift+Tab the
// other way), and into the dialog when focus was outside it. null: let the browser move.

export function nextFocus<T>(items: readonly T[], active: T | null, backwards: boolean): T | null {
  if (items.length === 0) return null;
  const i = active === null ? -1 : items.indexOf(active);
  if (i < 0) return backwards ? items[items.length - 1]! : items[0]!;
  if (!backwards && i === items.length - 1) return items[0]!;
  if (backwards && i === 0) return items[items.length - 1]!;
  return null;
}
