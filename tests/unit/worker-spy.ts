// Records the inputs of one kind of worker task (every WorkerPool.run of it, in call order)
// while letting the tasks run, for tests that count them or check what they were given.
import { WorkerPool } from '../../main/worker/pool.js';
import type { TaskName } from '../../main/worker/protocol.js';

export function watchTasks<I = unknown>(task: TaskName): { inputs: I[]; restore(): void } {
  const original = WorkerPool.prototype.run;
  const inputs: I[] = [];
  WorkerPool.prototype.run = function (this: WorkerPool, name: TaskName, ...rest: unknown[]) {
    if (name === task) inputs.push(rest[0] as I);
    return (original as (...a: unknown[]) => Promise<unknown>).call(this, name, ...rest);
  } as typeof original;
  return { inputs, restore: () => (WorkerPool.prototype.run = original) };
}
