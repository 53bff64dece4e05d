// Reading a file that a user (or anyone who can write to the folder) chose: it must be a
// regular file of bounded size. A symlink to /dev/zero, a FIFO or a 40 GB "config.json"
// must be refused at once, not read until memory runs out (or, for a FIFO, forever).
//
// The file is opened with O_NONBLOCK (opening a FIFO with no writer would block) and
// checked with fstat on the open descriptor, so what is checked is what is read. Symlinks
// are followed: Hugging Face cache snapshots are symlinks to blobs.
import fs from 'node:fs';
import fsp from 'node:fs/promises';

export class NotRegularFileError extends Error {
  override readonly name = 'NotRegularFileError';
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}

export interface ReadLimits {
  /** Refuse files larger than this many bytes. */
  maxBytes: number;
}

/** What the opened file must be before a byte is read. */
function refuseIrregular(file: string, st: fs.Stats, limits: ReadLimits): void {
  if (!st.isFile()) throw new NotRegularFileError(file, 'not a regular file (a device, FIFO, socket or folder)');
  if (st.size > limits.maxBytes) {
    throw new NotRegularFileError(file, `${st.size} bytes, more than the ${limits.maxBytes}-byte limit for this kind of file`);
  }
}

function refuseGrown(file: string, got: number, limits: ReadLimits): void {
  if (got > limits.maxBytes) throw new NotRegularFileError(file, `grew beyond the ${limits.maxBytes}-byte limit while it was read`);
}

/** The file's bytes; NotRegularFileError for a non-regular or oversized file, the fs error (ENOENT...) otherwise. */
export async function readRegularFile(file: string, limits: ReadLimits): Promise<Buffer> {
  const handle = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    refuseIrregular(file, st, limits);
    // Read at most maxBytes + 1: a file that grows while being read is still bounded.
    const buf = Buffer.alloc(Math.min(st.size, limits.maxBytes) + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got === buf.length) break;
    }
    refuseGrown(file, got, limits);
    return buf.subarray(0, got);
  } finally {
    await handle.close();
  }
}
