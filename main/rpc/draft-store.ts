// The setup draft: the form as the user left it, kept in one JSON file beside the history
// folder so that a reload of the page or a restart of the app finds it again. Writes are
// atomic (writeFileAtomic: flushed, then renamed into place) and serialized, so the file is always one whole
// draft; a file that does not parse is ignored (the app then starts from an empty form).
import fs from 'node:fs/promises';
import path from 'node:path';
import type { SetupDraft } from '../../shared/rpc.js';
import { writeFileAtomic } from '../files/atomic-write.js';
import { draftSchema } from './schemas.js';

export class DraftStore {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  async get(): Promise<SetupDraft | null> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      const parsed = draftSchema.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : null;
    } catch {
      return null; // not JSON (a disk that filled up mid-write in an older version): start afresh
    }
  }

  /** Writes after every earlier save has finished (the last call's draft wins). */
  save(draft: SetupDraft): Promise<void> {
    const run = async (): Promise<void> => {
      await fs.mkdir(path.dirname(this.file), { recursive: true });
      await writeFileAtomic(this.file, JSON.stringify(draft));
    };
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
