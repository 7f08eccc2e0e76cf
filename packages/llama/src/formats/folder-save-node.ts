// Saves of several files into a folder that commit whole: the new files are written into a staging folder inside the
// target and committed by one atomic write of a list of renames and removals, which the save (or the next save or load
// of the folder, after a crash) carries out. A failed or killed save leaves the earlier files as they were; the folder's
// lock keeps a second save, or a load, off a save in progress.
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { parseSaveCommit, saveCommitName as COMMIT, SaveInProgressError, saveStagingName, type SaveCommit } from './folder-save.js';
import { isLockOf, lockFolderForSave, waitForLiveSave, type FolderSaveLock } from './folder-save-lock-node.js';
import { syncDir, writeFileAtomic } from './write-atomic-node.js';

export { saveStagingName };

/** How {@link finishInterruptedSave} found the folder. */
export type InterruptedSave = 'none' | 'completed' | 'discarded';

/** How long a load of a folder waits, by default, for a save in progress there to end (see finishInterruptedSave). */
export const saveWaitMs = 60_000;

/** Refuses a lock given for another folder than the one saved into or loaded. */
function checkLockOf(lock: FolderSaveLock, dir: string, caller: string): void {
  if (!isLockOf(lock, dir)) throw new ModelError(`${caller}: the lock given is of ${lock.dir}, not of ${dir}; pass the lock lockFolderForSave(${JSON.stringify(dir)}) returned`);
}

/**
 * Writes a set of files into `dir` as one change: `write` puts them into a fresh staging folder (the path it is given);
 * then a commit naming them and the earlier files to remove (`remove`, those of the folder this save replaces by
 * nothing) is written atomically, `remove` is removed and the files are renamed into `dir`, those named in `last` last
 * (the file a loader reads first, such as adapter_config.json). Until the commit the folder holds its earlier files
 * unchanged; after it, the save completes even if this process dies, at the next save or load of the folder (see
 * finishInterruptedSave). Files of `dir` that are neither written nor in `remove` are not touched. Needs the space of
 * the new files beside the earlier ones until it completes. The save holds the folder's lock (`.save-lock`, see
 * lockFolderForSave) until it ends, or runs under `lock`, one the caller holds (to read the folder and save into it as
 * one step): a second save into the folder meanwhile, from this process or another, is refused, and a load waits.
 *
 * @throws SaveInProgressError where another save holds the folder, naming the process.
 * @example
 * await saveFilesTogether('out/lora', async (staging) => { await writeFileAtomic(join(staging, 'a.json'), '{}'); }, { remove: ['old.json'] });
 */
export async function saveFilesTogether(
  dir: string,
  write: (staging: string) => Promise<void>,
  options: { remove?: readonly string[]; last?: readonly string[]; lock?: FolderSaveLock } = {},
): Promise<void> {
  if (options.lock !== undefined) checkLockOf(options.lock, dir, 'saveFilesTogether');
  const lock = options.lock ?? (await lockFolderForSave(dir));
  try {
    await finishInterruptedSave(dir, { lock });
    const staging = join(dir, saveStagingName);
    await mkdir(staging);
    await syncDir(dir);
    let commit: SaveCommit;
    try {
      await write(staging);
      const written = (await readdir(staging)).sort();
      const last = (options.last ?? []).filter((name) => written.includes(name));
      const move = [...written.filter((name) => !last.includes(name)), ...last];
      commit = { move, remove: (options.remove ?? []).filter((name) => !written.includes(name)) };
      await writeFileAtomic(join(staging, COMMIT), `${JSON.stringify(commit, null, 1)}\n`);
    } catch (err) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    await applyCommit(dir, staging, commit);
  } finally {
    if (options.lock === undefined) await lock.release();
  }
}

/** Whether `path` exists. */
async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

/** An error of a folder this process may not change (read-only, or another user's). */
const isPermissionError = (err: unknown) => ['EACCES', 'EPERM', 'EROFS'].includes(String((err as { code?: unknown }).code));

/**
 * Completes or discards a save into `dir` that was interrupted (killed, power lost): a committed one (its files all
 * written) is carried out, an uncommitted one's staging folder is removed, the earlier files being untouched.
 * `keepUncommitted` leaves an uncommitted staging folder in place (a load, which need not write). A save in progress,
 * whose lock (`.save-lock`, see lockFolderForSave) names a process that runs, is never touched: this waits for it to
 * end, up to `waitMs` (default saveWaitMs, 60 s), then throws; once it ends, the folder is read as it left it. Only
 * the leftovers of a save whose process is gone (its lock taken over and removed) or of one that held no lock are acted
 * on, under the folder's lock; `lock`, one the caller holds, acts at once. Called by the saves and loads of adapter and
 * model folders before they read the folder. A save begun after this returns is not waited for: a load does not lock
 * the folder (it may be read-only), so a save into a folder while it is loaded can still replace files under the load.
 *
 * @throws SaveInProgressError where a save still holds the folder after `waitMs`, naming its process.
 * @throws ModelError naming the folder where the commit cannot be read or carried out (e.g. a read-only folder).
 * @example
 * if ((await finishInterruptedSave('out/lora')) === 'completed') console.log('finished the save that was interrupted');
 */
export async function finishInterruptedSave(dir: string, options: { keepUncommitted?: boolean; lock?: FolderSaveLock; waitMs?: number } = {}): Promise<InterruptedSave> {
  const staging = join(dir, saveStagingName);
  const keepUncommitted = options.keepUncommitted ?? false;
  if (options.lock !== undefined) {
    checkLockOf(options.lock, dir, 'finishInterruptedSave');
    return finishDeadSave(dir, staging, keepUncommitted);
  }
  const since = Date.now();
  const waitMs = options.waitMs ?? saveWaitMs;
  for (;;) {
    const lockState = await waitForLiveSave(dir, { waitMs, since });
    if (lockState === 'free' && !(await exists(staging))) return 'none';
    let lock: FolderSaveLock;
    try {
      lock = await lockFolderForSave(dir);
    } catch (err) {
      if (err instanceof SaveInProgressError && Date.now() - since < waitMs) continue; // a save took the folder meanwhile: wait for it
      if (err instanceof SaveInProgressError || !isPermissionError(err)) throw err;
      if (await exists(join(staging, COMMIT))) throw cannotComplete(dir, staging, err);
      if (keepUncommitted) return 'none'; // the earlier files are whole
      throw cannotDiscard(dir, staging, err);
    }
    try {
      return await finishDeadSave(dir, staging, keepUncommitted);
    } finally {
      await lock.release();
    }
  }
}

function cannotComplete(dir: string, staging: string, err: unknown): ModelError {
  return new ModelError(`a save into ${dir} was interrupted after its files were all written (${staging}), and cannot be completed (${String(err)}); give write access to ${dir} and load it again, or save there again`);
}

function cannotDiscard(dir: string, staging: string, err: unknown): ModelError {
  return new ModelError(`${staging} is left by a save into ${dir} that was interrupted before its files were all written, and cannot be removed (${String(err)}); the folder holds its earlier files: remove ${staging}`);
}

/** finishInterruptedSave under the folder's lock: the staging folder, if any, is a save's whose process is gone. */
async function finishDeadSave(dir: string, staging: string, keepUncommitted: boolean): Promise<InterruptedSave> {
  let text: string;
  try {
    text = await readFile(join(staging, COMMIT), 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    if (keepUncommitted) return 'none';
    try {
      await rm(staging, { recursive: true });
    } catch (rmErr) {
      const rmCode = (rmErr as { code?: unknown }).code;
      if (rmCode === 'ENOENT' || rmCode === 'ENOTDIR') return 'none';
      throw cannotDiscard(dir, staging, rmErr);
    }
    return 'discarded';
  }
  const commit = parseSaveCommit(text, join(staging, COMMIT), dir, staging);
  try {
    await applyCommit(dir, staging, commit);
  } catch (err) {
    throw cannotComplete(dir, staging, err);
  }
  return 'completed';
}

/** Carries out a commit; repeated after a crash, it does what is left. */
async function applyCommit(dir: string, staging: string, commit: SaveCommit): Promise<void> {
  for (const name of commit.remove) await rm(join(dir, name), { force: true });
  for (const name of commit.move) {
    try {
      await rename(join(staging, name), join(dir, name));
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err; // moved already
    }
  }
  await syncDir(dir);
  await rm(staging, { recursive: true, force: true });
}
