// The body of every pool worker (pool.ts): runs one task at a time and answers with its
// result, its error (serialized, see protocol.ts) or progress. Tasks load their modules
// on first use, so a hashing worker never parses a tokenizer library.
import { parentPort } from 'node:worker_threads';
import { serializeError } from './errors.js';
import type { FromWorker, ToWorker } from './protocol.js';
import { runTask } from './tasks.js';

const port = parentPort;
if (!port) throw new Error('task-worker.ts runs only as a worker thread');

port.on('message', (msg: ToWorker) => {
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  void runTask(msg.task, msg.input, (done, total) => post({ id: msg.id, kind: 'progress', done, total })).then(
    ({ value, transfer }) => post({ id: msg.id, kind: 'result', value }, transfer),
    (e: unknown) => post({ id: msg.id, kind: 'error', error: serializeError(e) }),
  );
});
