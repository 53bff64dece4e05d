#!/usr/bin/env node
// The `adapterlens` command: runs the compiled CLI (npm run setup builds it).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.join(root, 'dist', 'main', 'cli', 'main.js');
if (!fs.existsSync(entry)) {
  console.error(`adapterlens: not built yet (${entry} is missing). Run \`npm run setup\` in ${root}.`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
