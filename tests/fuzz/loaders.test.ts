// Property-based fuzzing of the file loaders (issue 13): the safetensors reader, the
// config.json resolver (and the checkpoint folder it belongs to), the adapter parser with
// its regexes, the JSON nesting check and the report reader. The property is always the
// same: an input is either accepted or refused with the project's own error (LoadError,
// ReportFormatError, UnsupportedPatternError): never a crash, a hang or an untyped
// exception (TypeError, RangeError "Maximum call stack size exceeded", ...).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { LoadError } from '../../main/model/errors.js';
import { openAdapter } from '../../main/model/adapter.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { resolveModelConfig } from '../../main/model/checkpoint-config.js';
import { compilePythonRegex, UnsupportedPatternError } from '../../main/model/python-regex.js';
import { readSafetensorsHeader, weightRef } from '../../main/model/safetensors.js';
import { JsonDepthError, parseJsonText } from '../../main/files/json-text.js';
import { parseReport, ReportFormatError } from '../../main/report/read-report.js';
import { renderMarkdown } from '../../main/report/render-markdown.js';
import { renderCsv } from '../../main/report/render-csv.js';
import type { NativeModelConfig } from '../../main/engine/native-types.js';
import { ADAPTERS_DIR, MODEL_DIR, tempDir } from '../rpc/helpers.js';
import { extremeNumber, fuzz, hostileJson, mutateFields, regexish } from './settings.js';

const root = tempDir('fuzz-loaders');
let n = 0;
const scratch = (name: string): string => path.join(root, `${n++}-${name}`);

/** Runs f; an error that is not one of `allowed` fails the property with what it was. */
async function onlyTyped(f: () => unknown, ...allowed: (abstract new (...a: never[]) => Error)[]): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (allowed.some((cls) => e instanceof cls)) return;
    throw new Error(`untyped failure: ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

describe('fuzz: loaders refuse with their own errors only', { timeout: 300_000 }, () => {
  let adapterWeights: Buffer;
  let configJson: Record<string, unknown>;
  let adapterConfig: Record<string, unknown>;
  let base: NativeModelConfig;

  before(async () => {
    adapterWeights = fs.readFileSync(path.join(ADAPTERS_DIR, 'qv-r8', 'adapter_model.safetensors'));
    configJson = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    adapterConfig = JSON.parse(fs.readFileSync(path.join(ADAPTERS_DIR, 'qv-r8', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    base = (await openCheckpoint(MODEL_DIR)).config.native;
  });

  it('safetensors reader: mutated, truncated and re-headed files', async (t) => {
    const headerLen = Number(adapterWeights.readBigUInt64LE(0));
    const mutation = fc.oneof(
      // Random byte flips anywhere (mostly in the header, where they matter).
      fc.array(fc.tuple(fc.nat({ max: Math.min(adapterWeights.length - 1, headerLen + 64) }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((flips) => {
        const b = Buffer.from(adapterWeights);
        for (const [at, v] of flips) b[at] = v;
        return b;
      }),
      // Truncated anywhere.
      fc.nat({ max: adapterWeights.length }).map((len) => adapterWeights.subarray(0, len)),
      // A new header (any JSON, or entries with hostile shapes, dtypes and offsets) over the old data.
      fc
        .oneof(
          hostileJson.map((j) => JSON.stringify(j) ?? 'null'),
          fc.dictionary(fc.string({ maxLength: 16 }), fc.record({ dtype: fc.oneof(fc.constantFrom('F32', 'BF16', 'F16', 'I64', 'F8_E4M3', 'X'), fc.string()), shape: fc.array(extremeNumber, { maxLength: 4 }), data_offsets: fc.array(extremeNumber, { maxLength: 3 }) }), { maxKeys: 6 }).map((h) => JSON.stringify(h)),
          fc.nat({ max: 300 }).map((d) => `{"a":${'['.repeat(d * 10)}${']'.repeat(d * 10)}}`),
        )
        .chain((header) =>
          fc.oneof(fc.constant(BigInt(Buffer.byteLength(header))), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map((declared) => {
            const len = Buffer.alloc(8);
            len.writeBigUInt64LE(declared);
            return Buffer.concat([len, Buffer.from(header), adapterWeights.subarray(8 + headerLen)]);
          }),
        ),
    );
    await fuzz(
      t,
      fc.asyncProperty(mutation, async (bytes) => {
        const file = scratch('x.safetensors');
        fs.writeFileSync(file, bytes);
        await onlyTyped(async () => {
          const h = await readSafetensorsHeader(file);
          for (const e of h.entries.values()) {
            try {
              weightRef(h, e);
            } catch (err) {
              if (!(err instanceof LoadError)) throw err;
            }
          }
        }, LoadError);
        fs.rmSync(file);
      }),
    );
  });

  it('config.json resolver: hostile field values and whole documents', async (t) => {
    await fuzz(
      t,
      fc.property(fc.oneof(mutateFields(configJson), hostileJson), (json) => {
        try {
          const r = resolveModelConfig('/fuzz/config.json', json);
          // Whatever is accepted is within the engine's bounds.
          assert.ok(r.native.numLayers <= 1024 && r.native.hiddenSize <= 1 << 17 && Number.isFinite(r.native.rmsNormEps) && Number.isFinite(r.native.ropeTheta));
        } catch (e) {
          if (!(e instanceof LoadError)) throw new Error(`untyped failure: ${(e as Error).name}: ${(e as Error).message}`);
        }
      }),
    );
  });

  it('checkpoint folder: fuzzed config.json text over the real weights', async (t) => {
    const text = fc.oneof(
      mutateFields(configJson).map((j) => JSON.stringify(j)),
      fc.string({ maxLength: 64 }),
      fc.nat({ max: 2000 }).map((d) => JSON.stringify({ ...configJson, x: 0 }).replace('"x":0', `"x":${'{"a":'.repeat(d)}1${'}'.repeat(d)}`)),
    );
    const dir = scratch('model');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(MODEL_DIR)) if (f.endsWith('.safetensors') || f.endsWith('index.json')) fs.symlinkSync(path.join(MODEL_DIR, f), path.join(dir, f));
    await fuzz(
      t,
      fc.asyncProperty(text, async (configText) => {
        fs.writeFileSync(path.join(dir, 'config.json'), configText);
        await onlyTyped(() => openCheckpoint(dir), LoadError);
      }),
    );
  });

  it('adapter parser: hostile adapter_config.json values and regexes over real weights', async (t) => {
    const regexFields = fc.record({
      target_modules: fc.oneof(regexish, fc.array(fc.oneof(regexish, fc.constantFrom('q_proj', 'v_proj', 'k_proj')), { maxLength: 4 }), fc.constant(null)),
      exclude_modules: fc.oneof(regexish, fc.array(regexish, { maxLength: 3 }), fc.constant(null)),
      rank_pattern: fc.dictionary(regexish, fc.oneof(fc.integer({ min: 1, max: 16 }), extremeNumber), { maxKeys: 3 }),
      alpha_pattern: fc.dictionary(regexish, extremeNumber, { maxKeys: 3 }),
      layers_to_transform: fc.oneof(fc.constant(null), fc.nat({ max: 8 }), fc.array(extremeNumber, { maxLength: 3 })),
      layers_pattern: fc.oneof(fc.constant(null), regexish, fc.array(regexish, { maxLength: 2 })),
    });
    const config = fc.oneof(
      mutateFields(adapterConfig),
      regexFields.map((r) => ({ ...adapterConfig, ...r })),
      hostileJson,
    );
    const dir = scratch('adapter');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), adapterWeights);
    await fuzz(
      t,
      fc.asyncProperty(config, async (cfg) => {
        fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(cfg) ?? 'null');
        await onlyTyped(async () => {
          const { spec } = await openAdapter(dir, base);
          for (const m of spec.modules) assert.ok(Number.isFinite(m.scale) && m.rank >= 1, 'accepted adapters have finite scales');
        }, LoadError);
      }),
    );
  });

  it('Python regexes on RE2: any pattern compiles or is refused; matching never throws', async (t) => {
    await fuzz(
      t,
      fc.property(fc.oneof(regexish, fc.string({ maxLength: 40 })), fc.array(fc.oneof(fc.constantFrom('model.layers.0.self_attn.q_proj', 'model.layers.31.mlp.down_proj', 'lm_head'), fc.string({ maxLength: 40 })), { maxLength: 4 }), (pattern, keys) => {
        let re;
        try {
          re = compilePythonRegex(pattern);
        } catch (e) {
          if (e instanceof UnsupportedPatternError) return;
          throw new Error(`untyped failure: ${(e as Error).name}: ${(e as Error).message}`);
        }
        for (const k of keys) {
          re.fullMatch(k);
          re.prefixGroup(k, 'x');
        }
      }),
    );
  });

  it('JSON text: any text parses or is refused as too deep / not JSON', async (t) => {
    await fuzz(
      t,
      fc.property(fc.oneof(fc.string(), fc.json(), fc.nat({ max: 500 }).map((d) => '['.repeat(d) + ']'.repeat(d)), fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', ':', ',', '1') })), (text) => {
        try {
          parseJsonText(text);
        } catch (e) {
          if (!(e instanceof SyntaxError) && !(e instanceof JsonDepthError)) throw new Error(`untyped failure: ${(e as Error).name}: ${(e as Error).message}`);
        }
      }),
    );
  });

  it('report reader: a mutated report is refused, or it renders (Markdown, CSV) without an error', async (t) => {
    const raw = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, '..', '..', 'reports', 'demo-llama-gqa-bf16.json'), 'utf8')) as Record<string, unknown>;
    const mutated = fc.oneof(
      mutateFields(raw),
      fc.tuple(fc.constantFrom('adapters', 'settings', 'model', 'memory'), hostileJson).map(([k, v]) => ({ ...raw, [k]: v })),
      fc.tuple(fc.constantFrom('strategies', 'name', 'rank', 'sha256', 'targetModules'), hostileJson).map(([k, v]) => {
        const r = structuredClone(raw) as { adapters: Record<string, unknown>[] };
        r.adapters[0]![k] = v;
        return r;
      }),
      fc.tuple(fc.constantFrom('layers', 'heads', 'tokens', 'generation', 'scores', 'bytes', 'strategy'), hostileJson).map(([k, v]) => {
        const r = structuredClone(raw) as { adapters: { strategies: Record<string, unknown>[] }[] };
        r.adapters[0]!.strategies[0]![k] = v;
        return r;
      }),
    );
    await fuzz(
      t,
      fc.property(mutated, (value) => {
        let report;
        try {
          report = parseReport(value);
        } catch (e) {
          if (e instanceof ReportFormatError) return;
          throw new Error(`untyped failure: ${(e as Error).name}: ${(e as Error).message}`);
        }
        renderMarkdown(report);
        renderCsv(report);
      }),
    );
  });
});
