// Saves of several files into a folder that commit whole: the new files are written into a staging folder inside the
// target and committed by one atomic write of a list of renames and removals, which the save (or the next save or load
// of the folder, after a crash) carries out. A failed or killed save leaves the earlier files as they were.
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { parseSaveCommit, saveCommitName as COMMIT, saveStagingName, type SaveCommit } from './folder-save.js';
import { syncDir, writeFileAtomic } from './write-atomic-node.js';

export { saveStagingName };

/** How {@link finishInterruptedSave} found the folder. */
export type InterruptedSave = 'none' | 'completed' | 'discarded';

/**
 * Writes a set of files into `dir` as one change: `write` puts them into a fresh staging folder (the path it is given);
 * then a commit naming them and the earlier files to remove (`remove`, those of the folder this save replaces by
 * nothing) is written atomically, `remove` is removed and the files are renamed into `dir`, those named in `last` last
 * (the file a loader reads first, such as adapter_config.json). Until the commit the folder holds its earlier files
 * unchanged; after it, the save completes even if this process dies, at the next save or load of the folder (see
 * finishInterruptedSave). Files of `dir` that are neither written nor in `remove` are not touched. Needs the space of
 * the new files beside the earlier ones until it completes. Two saves into one folder must not run at once.
 *
 * @example
 * await saveFilesTogether('out/lora', async (staging) => { await writeFileAtomic(join(staging, 'a.json'), '{}'); }, { remove: ['old.json'] });
 */
export async function saveFilesTogether(dir: string, write: (staging: string) => Promise<void>, options: { remove?: readonly string[]; last?: readonly string[] } = {}): Promise<void> {
  await finishInterruptedSave(dir);
  const staging = join(dir, saveStagingName);
  await mkdir(dir, { recursive: true });
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
}

/**
 * Completes or discards a save into `dir` that was interrupted (killed, power lost): a committed one (its files all
 * written) is carried out, an uncommitted one's staging folder is removed, the earlier files being untouched.
 * `keepUncommitted` leaves an uncommitted staging folder in place (a load, which may run beside a save in progress).
 * Called by the saves and loads of adapter and model folders before they read the folder.
 *
 * @throws ModelError naming the folder where the commit cannot be read or carried out (e.g. a read-only folder).
 * @example
 * if ((await finishInterruptedSave('out/lora')) === 'completed') console.log('finished the save that was interrupted');
 */
export async function finishInterruptedSave(dir: string, options: { keepUncommitted?: boolean } = {}): Promise<InterruptedSave> {
  const staging = join(dir, saveStagingName);
  let text: string;
  try {
    text = await readFile(join(staging, COMMIT), 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    if (options.keepUncommitted) return 'none';
    try {
      await rm(staging, { recursive: true });
    } catch (rmErr) {
      const rmCode = (rmErr as { code?: unknown }).code;
      if (rmCode === 'ENOENT' || rmCode === 'ENOTDIR') return 'none';
      throw new ModelError(`${staging} is left by a save into ${dir} that was interrupted before its files were all written, and cannot be removed (${String(rmErr)}); the folder holds its earlier files: remove ${staging}`);
    }
    return 'discarded';
  }
  const commit = parseSaveCommit(text, join(staging, COMMIT), dir, staging);
  try {
    await applyCommit(dir, staging, commit);
  } catch (err) {
    throw new ModelError(`a save into ${dir} was interrupted after its files were all written (${staging}), and cannot be completed (${String(err)}); give write access to ${dir} and load it again, or save there again`);
  }
  return 'completed';
}

/** Carries out a commit; repeated (after a crash, or by a load beside the save) it does what is left. */
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
