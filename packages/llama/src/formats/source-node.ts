// Node byte source over a file handle: reads only the requested ranges.

import { open } from 'node:fs/promises';
import type { ByteSource } from './source.js';

/** Largest single read request; bigger ranges are read in pieces. */
const maxChunk = 1 << 30;

/**
 * Opens `path` for random-access reading. Close it with `source.close()` when done.
 *
 * @example
 * const src = await openFileSource('model.safetensors');
 * try { const st = await SafetensorsFile.open(src); } finally { await src.close(); }
 */
export async function openFileSource(path: string): Promise<ByteSource & { close(): Promise<void> }> {
  const handle = await open(path, 'r');
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (err) {
    await handle.close();
    throw err;
  }
  let closed = false;
  return {
    name: path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const want = Math.max(0, Math.min(length, size - offset));
      const out = new Uint8Array(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await handle.read(out, got, Math.min(want - got, maxChunk), offset + got);
        if (bytesRead === 0) break; // the file shrank since it was opened
        got += bytesRead;
      }
      return got === want ? out : out.subarray(0, got);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
