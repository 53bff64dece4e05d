// Spots the regular expressions that take exponential time on a backtracking engine
// (JavaScript's, which @huggingface/tokenizers uses for tokenizer.json patterns): a
// repetition whose body itself repeats, as in `([a-z._0-9]+)*X` or `(\s*\S+){2,}`. On a
// string that almost matches, the engine tries every way of splitting it between the two
// repetitions. Real tokenizer patterns (GPT-2, Llama 3, Qwen2, DeepSeek, GPT-4o) repeat
// only single atoms and classes, so refusing nested repetition costs nothing real.
//
// Not caught: overlapping alternatives under one repetition (`(a|a)*`). Those are rare by
// accident, and whatever slips through still runs in a worker with a time limit.

/** The repeated group that repeats inside (the first one found), or null. */
export function nestedRepetition(pattern: string): string | null {
  interface Frame {
    start: number;
    /** A repetition occurs somewhere inside this group. */
    repeats: boolean;
  }
  const stack: Frame[] = [{ start: 0, repeats: false }];
  /** The atom just read: a group (with its start and whether it repeats inside) or a plain atom. */
  let atom: { group: Frame | null } | null = null;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '\\') {
      // \p{...}, \x{...}, \u{...}, \k<...> read as one atom.
      const next = pattern[i + 1];
      let end = i + 2;
      if ((next === 'p' || next === 'P' || next === 'x' || next === 'u') && pattern[end] === '{') {
        const close = pattern.indexOf('}', end);
        end = close < 0 ? pattern.length : close + 1;
      }
      atom = { group: null };
      i = end;
      continue;
    }
    if (c === '[') {
      i = classEnd(pattern, i);
      atom = { group: null };
      continue;
    }
    if (c === '(') {
      stack.push({ start: i, repeats: false });
      atom = null;
      i++;
      continue;
    }
    if (c === ')') {
      const frame = stack.length > 1 ? stack.pop()! : null;
      atom = frame ? { group: frame } : null;
      i++;
      // An unquantified group passes what repeats inside it on to its parent.
      if (frame?.repeats && !isQuantifierAt(pattern, i)) stack[stack.length - 1]!.repeats = true;
      continue;
    }
    const q = quantifierAt(pattern, i);
    if (q) {
      const repeating = q.max === null || q.max >= 2;
      const group = atom?.group ?? null;
      if (repeating && group?.repeats) return pattern.slice(group.start, q.end);
      if (repeating || group?.repeats) stack[stack.length - 1]!.repeats = true;
      atom = null;
      i = q.end;
      continue;
    }
    if (c === '|') atom = null;
    else atom = { group: null };
    i++;
  }
  return null;
}

/** Index just past the character class starting at `i` ('['). */
function classEnd(p: string, i: number): number {
  let j = i + 1;
  if (p[j] === '^') j++;
  if (p[j] === ']') j++; // a leading ] is literal
  while (j < p.length) {
    const c = p[j]!;
    if (c === '\\') j += 2;
    else if (c === '[' && p[j + 1] === ':') {
      const close = p.indexOf(':]', j + 2);
      j = close < 0 ? j + 1 : close + 2;
    } else if (c === '[') j = classEnd(p, j); // Oniguruma nested classes
    else if (c === ']') return j + 1;
    else j++;
  }
  return p.length;
}

function isQuantifierAt(p: string, i: number): boolean {
  return quantifierAt(p, i) !== null;
}

/** A quantifier at `i`: its maximum count (null: unbounded) and where it ends (lazy/possessive suffix included). */
function quantifierAt(p: string, i: number): { max: number | null; end: number } | null {
  const c = p[i];
  let max: number | null;
  let end: number;
  if (c === '*' || c === '+') {
    max = null;
    end = i + 1;
  } else if (c === '?') {
    max = 1;
    end = i + 1;
  } else if (c === '{') {
    const m = /^\{(\d*)(,(\d*))?\}/.exec(p.slice(i, i + 32));
    if (!m || (m[1] === '' && m[3] === undefined)) return null; // a literal brace
    max = m[2] === undefined ? Number(m[1]) : m[3] === '' || m[3] === undefined ? null : Number(m[3]);
    end = i + m[0].length;
  } else {
    return null;
  }
  if (p[end] === '?' || p[end] === '+') end++;
  return { max, end };
}
