// The regular expressions of adapter_config.json (target_modules, exclude_modules,
// layers_pattern, rank_pattern / alpha_pattern keys), written in Python's `re` syntax,
// run on RE2 (the re2js package): matching takes time linear in the text whatever the
// pattern, so a pattern like `([a-z._0-9]+)*X` cannot hang anything. JavaScript's own
// RegExp backtracks, and would.
//
// Python syntax is translated where RE2 spells it differently (\Z, \uXXXX, {,n}, the a/u
// flags); what RE2 cannot express at all (back-references, lookahead and lookbehind, the
// verbose and locale flags) is refused with a reason, which the caller reports with the
// file and field.
import { RE2JS } from 're2js';

export class UnsupportedPatternError extends Error {
  override readonly name = 'UnsupportedPatternError';
}

/** Longest pattern accepted; PEFT patterns are a few dozen characters. */
export const MAX_PATTERN_CHARS = 4096;

/** Python `re` source → RE2 source; UnsupportedPatternError for what RE2 cannot run. */
export function pythonToRe2(pattern: string): string {
  if (pattern.length > MAX_PATTERN_CHARS) throw new UnsupportedPatternError(`it is ${pattern.length} characters long (at most ${MAX_PATTERN_CHARS})`);
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const n = pattern[i + 1];
      if (n === undefined) throw new UnsupportedPatternError('the pattern ends with a lone backslash');
      if (!inClass && n === 'Z') out += '\\z';
      else if (!inClass && n >= '1' && n <= '9') throw new UnsupportedPatternError(`it uses the back-reference \\${n}, which a linear-time matcher cannot run`);
      else if (n === 'u' && /^[0-9a-fA-F]{4}$/.test(pattern.slice(i + 2, i + 6))) {
        out += `\\x{${pattern.slice(i + 2, i + 6)}}`;
        i += 4;
      } else if (n === 'U' && /^[0-9a-fA-F]{8}$/.test(pattern.slice(i + 2, i + 10))) {
        out += `\\x{${pattern.slice(i + 2, i + 10)}}`;
        i += 8;
      } else if (n === 'N') throw new UnsupportedPatternError('it uses a named character escape \\N{...}; write the character itself');
      else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal in both syntaxes.
      if (pattern[i + 1] === '^') out += pattern[++i]!;
      if (pattern[i + 1] === ']') out += pattern[++i]!;
      continue;
    }
    if (c === '{' && pattern[i + 1] === ',' && /^\{,\d+\}/.test(pattern.slice(i))) {
      out += '{0';
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      const rest = pattern.slice(i);
      if (rest.startsWith('(?P=')) throw new UnsupportedPatternError('it uses a back-reference (?P=name), which a linear-time matcher cannot run');
      if (/^\(\?(=|!|<=|<!)/.test(rest)) throw new UnsupportedPatternError('it uses a lookahead or lookbehind, which a linear-time matcher cannot run');
      const flags = /^\(\?([aiLmsux]+)(?:-([imsx]+))?([:)])/.exec(rest);
      if (flags) {
        if (/[xL]/.test(flags[1]! + (flags[2] ?? ''))) throw new UnsupportedPatternError('it uses the verbose (?x) or locale (?L) flag; write the pattern without it');
        // a (ASCII) and u (Unicode) change only non-ASCII matching; module names are ASCII.
        const on = flags[1]!.replace(/[au]/g, '');
        const off = flags[2] ?? '';
        const close = flags[3]!;
        if (on === '' && off === '') out += close === ':' ? '(?:' : '';
        else out += `(?${on}${off ? `-${off}` : ''}${close}`;
        i += flags[0].length - 1;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** A compiled pattern with the three ways PEFT uses one. */
export interface LinearRegex {
  /** re.fullmatch */
  fullMatch(text: string): boolean;
  /** re.match: a match starting at 0, and its named group `group` (null when absent or no match). */
  prefixGroup(text: string, group: string): string | null | undefined;
}

/**
 * Compiles `wrap(translated pattern)` (the wrapper adds the anchoring context PEFT uses,
 * in RE2 syntax). Throws UnsupportedPatternError with RE2's reason for a pattern it refuses.
 */
export function compilePythonRegex(pattern: string, wrap: (re2Source: string) => string = (s) => s): LinearRegex {
  const source = wrap(pythonToRe2(pattern));
  let re: RE2JS;
  try {
    re = RE2JS.compile(source);
  } catch (e) {
    throw new UnsupportedPatternError(`RE2, the linear-time matcher AdapterLens runs it on, refuses it (${(e as Error).message})`);
  }
  return {
    fullMatch: (text) => re.matches(text),
    prefixGroup: (text, group) => {
      const m = re.matcher(text);
      if (!m.lookingAt()) return undefined;
      try {
        return m.group(group);
      } catch {
        return null; // the pattern has no such group
      }
    },
  };
}
