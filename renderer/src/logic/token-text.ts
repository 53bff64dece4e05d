// The document's text under each column of a token heatmap, decoded by main with the
// run's tokenizer (text.decode), once per report and bin layout. When the tokenizer
// folder is gone (a report from another machine) there is no text and the axis keeps
// token positions.
import { useEffect, useState } from 'react';
import type { Report } from '../../../shared/report.js';
import { rpc } from '../rpc/instance.js';
import { columnTokenGroups } from './heatmap.js';

const cache = new Map<string, Promise<string[] | null>>();

export function columnTexts(report: Report, binSize: number, columns: number): Promise<string[] | null> {
  const key = `${report.createdAt}|${report.tokenizer.dir}|${report.documentTokens.length}|${binSize}|${columns}`;
  let p = cache.get(key);
  if (!p) {
    if (cache.size > 16) cache.clear();
    p = rpc()
      .call('text.decode', { tokenizerDir: report.tokenizer.dir, groups: columnTokenGroups(report, binSize, columns) })
      .then((r) => r.texts)
      .catch(() => {
        // Not remembered: a lookup that failed (disconnected, say) is tried again next time.
        cache.delete(key);
        return null;
      });
    cache.set(key, p);
  }
  return p;
}

/** The texts once they arrive (null before, and when they cannot be had). */
export function useColumnTexts(report: Report, binSize: number | null, columns: number): string[] | null {
  const [texts, setTexts] = useState<string[] | null>(null);
  useEffect(() => {
    setTexts(null);
    if (binSize === null || columns === 0) return undefined;
    let live = true;
    void columnTexts(report, binSize, columns).then((t) => live && setTexts(t));
    return () => {
      live = false;
    };
  }, [report, binSize, columns]);
  return texts;
}
