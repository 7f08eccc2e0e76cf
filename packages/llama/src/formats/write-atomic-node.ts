// Atomic file writes for Node: the content goes to a temp file beside the target, is flushed to
// disk, then renamed over the target, so a crash or an error leaves the old file or the new one.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Options of {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Permission bits of the new file (e.g. 0o600 for secrets); default 0o666 less the umask. */
  readonly mode?: number;
}

let counter = 0;

/**
 * Writes `path` atomically: `content` (text as UTF-8, bytes, or a function writing through the
 * open handle) goes to a temp file in the same folder, which is fsynced, renamed over `path`, and
 * the folder fsynced where the platform allows. On any error the temp file is removed and an
 * existing `path` is left as it was.
 *
 * @example
 * await writeFileAtomic('out/config.json', JSON.stringify(config));
 * await writeFileAtomic('out/big.bin', async (file) => { await file.write(part1); await file.write(part2); });
 */
export async function writeFileAtomic(
  path: string,
  content: string | Uint8Array | ((file: FileHandle) => Promise<unknown>),
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  try {
    const file = await open(tmp, 'wx', options.mode ?? 0o666);
    try {
      if (typeof content === 'function') await content(file);
      else await file.writeFile(content);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    // A failed write (ENOSPC) names no file; say which one it was.
    const e = err as { code?: unknown; path?: unknown };
    if (typeof e?.code === 'string' && e.path === undefined) e.path = path;
    throw err;
  }
  await syncDir(dirname(path));
}

/** Flushes a folder's entries (a rename inside it) to disk; skipped where folders cannot be opened (Windows). */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(dir, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a folder (EINVAL, EISDIR); the rename itself is done.
  } finally {
    await handle.close();
  }
}
