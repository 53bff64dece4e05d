// How the fuzzers run: seeded (the same inputs on every run, so a failure reproduces;
// ADAPTERLENS_FUZZ_SEED picks another seed) and bounded in time per property
// (ADAPTERLENS_FUZZ_MS, default 3 s: CI stays fast; set it higher for a long local run).
// A failure prints fast-check's seed, path and the shrunk counterexample.
import fc from 'fast-check';

export const FUZZ_SEED = Number(process.env.ADAPTERLENS_FUZZ_SEED ?? 20261201);
export const FUZZ_MS = Number(process.env.ADAPTERLENS_FUZZ_MS ?? 3000);

/** Parameters for fc.assert: many runs, stopped by the time limit. */
export function fuzzParams<T>(ms = FUZZ_MS): fc.Parameters<T> {
  return { seed: FUZZ_SEED, numRuns: 1_000_000, plugins: [fc.interruptAfterTimeLimit(ms) as fc.Plugin<T>], endOnFailure: false };
}

/** Runs a property and says how many inputs it tried (shown by the spec reporter). */
export async function fuzz<T>(t: { diagnostic(message: string): void }, property: fc.IAsyncProperty<T> | fc.IProperty<T>, ms = FUZZ_MS): Promise<void> {
  const details = await fc.check(property as fc.IAsyncProperty<T>, fuzzParams<T>(ms));
  t.diagnostic(`${details.numRuns} inputs in ${ms} ms (seed ${FUZZ_SEED})`);
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(`${fc.defaultReportMessage(details) ?? 'property failed'}\nThe failure: ${cause}`);
  }
  if (details.numRuns < 5) throw new Error(`only ${details.numRuns} inputs ran: the fuzzer did not really run`);
}

/** Numbers a hostile file would carry. */
export const extremeNumber = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 63, 1e308, -1e308, 5e-324, 1e39, 1e-39, Number.MAX_SAFE_INTEGER),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Any JSON value, with extreme numbers mixed in. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    extremeNumber,
    fc.string(),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** Regex-ish strings: the characters patterns are made of. */
export const regexish = fc.string({
  unit: fc.constantFrom(...'()[]{}*+?|.^$\\-:=!<>Pa_zq0129dws,'.split(''), '(?P<', '(?=', '(?<=', '(?i)', '\\Z', '\\A', '\\1', '{2,}', '[^', 'q_proj', 'v_proj', '.*'),
  maxLength: 24,
});

/** Replaces one field (by key) of an object with a hostile value. */
export function mutateFields(base: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(base);
  return fc
    .array(fc.tuple(fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 8 })), fc.oneof(hostileJson, regexish, extremeNumber)), { minLength: 1, maxLength: 4 })
    .map((edits) => {
      const out: Record<string, unknown> = structuredClone(base);
      for (const [k, v] of edits) out[k] = v;
      return out;
    });
}
