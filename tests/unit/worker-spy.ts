// Records the inputs of one kind of worker task (every WorkerPool.run of it, in call order)
// while letting the tasks run (watchTasks), or holding them until the test lets them go
// (holdTasks), for tests that count them, check what they were given, or look at what
// happens while they are still running.
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

/**
 * Holds every task of this kind until open() (then lets them run, or fails them with
 * `failWith`). A held task stopped meanwhile (its signal aborted) is cancelled when it is let go.
 */
export function holdTasks<I = unknown>(task: TaskName, failWith?: Error): { open(): void; held(): number; jobs(): number; inputs: I[]; restore(): void } {
  const original = WorkerPool.prototype.run;
  let release!: () => void;
  const opened = new Promise<void>((r) => (release = r));
  let held = 0;
  const inputs: I[] = [];
  WorkerPool.prototype.run = function (this: WorkerPool, name: TaskName, ...rest: unknown[]) {
    const run = (): Promise<unknown> => (original as (...a: unknown[]) => Promise<unknown>).call(this, name, ...rest);
    if (name !== task) return run();
    held++;
    inputs.push(rest[0] as I);
    return opened.then(() => {
      held--;
      if (failWith) throw failWith;
      return run();
    });
  } as typeof original;
  return { open: release, held: () => held, jobs: () => inputs.length, inputs, restore: () => (WorkerPool.prototype.run = original) };
}
