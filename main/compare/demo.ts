// The embedded default comparison: the tiny fixture model, two of its adapters, a short
// document. Used by `adapterlens demo` and offered by the app (AppInfo.demo). The
// fixtures live under tests/, which a packaged app does not ship: demoAvailable() says
// whether they are here.
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../paths.js';
import { DEFAULT_SETTINGS, type CompareRequest } from '../../shared/compare.js';

const fixtures = path.join(projectRoot, 'tests', 'fixtures');
const documentFile = path.join(projectRoot, 'main', 'cli', 'demo-document.txt');

export function demoRequest(): CompareRequest {
  return {
    ...DEFAULT_SETTINGS,
    strategies: ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'lowrank:4', 'hybrid:1'],
    maxNewTokens: 16,
    modelDir: path.join(fixtures, 'models', 'llama-gqa-bf16'),
    adapters: [
      { dir: path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'qv-r8') },
      { dir: path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'all-linear-rslora') },
    ],
    documentText: fs.readFileSync(documentFile, 'utf8'),
    promptText: ' According to the above introduction of HKU,',
  };
}

/** Whether the demo's model, adapters and document are present. */
export function demoAvailable(): boolean {
  const probe = [
    path.join(fixtures, 'models', 'llama-gqa-bf16', 'config.json'),
    path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'qv-r8', 'adapter_config.json'),
    path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'all-linear-rslora', 'adapter_config.json'),
    documentFile,
  ];
  return probe.every((p) => fs.existsSync(p));
}
