// What a save into a folder that commits whole leaves there (see folder-save-node.ts), read alike by Node's loaders and
// by the browser's, which see a picked folder's files: the staging folder, its commit, the save's lock file, and the
// folder's files as the commit leaves them.
import { ModelError } from '../errors.js';

/** The staging folder of a save in progress, inside the folder saved into (same file system, so its files rename in). */
export const saveStagingName = '.save-in-progress';
/** The commit of a staged save: its existence means the staged files are complete and replace the folder's. */
export const saveCommitName = 'commit.json';

/**
 * The lock file of a save in progress, in the folder saved into (see folder-save-lock-node.ts): created exclusively, it
 * names the saving process, so that a second save or a load of the folder knows the staging folder is a live save's.
 */
export const saveLockName = '.save-lock';

/** Whether a folder's file is the save lock or one of its helpers (never a file of the adapter or model saved there). */
export function isSaveLockFile(name: string): boolean {
  return name === saveLockName || name.startsWith(`${saveLockName}.`);
}

/** The process holding a folder's save lock, as its lock file names it. */
export interface SaveLockHolder {
  readonly pid: number;
  readonly hostname: string;
  /** When the lock was taken (ISO 8601). */
  readonly started: string;
}

/**
 * A save into a folder, or a load of it, refused because another save holds the folder's lock (`lockFile`): a save is
 * refused at once, a load once it has waited for that save to end. `holder` is null where the lock file names no process
 * (one being created, or left by a save killed while creating it).
 */
export class SaveInProgressError extends ModelError {
  /** The folder saved into. */
  readonly dir: string;
  /** Its lock file, to remove by hand only where no process of `holder`'s is saving there. */
  readonly lockFile: string;
  readonly holder: SaveLockHolder | null;

  constructor(dir: string, lockFile: string, holder: SaveLockHolder | null, message: string) {
    super(message);
    this.name = 'SaveInProgressError';
    this.dir = dir;
    this.lockFile = lockFile;
    this.holder = holder;
  }
}

/** What a committed save does to the folder: `remove` the earlier files it replaces by none, then rename `move` in, in order. */
export interface SaveCommit {
  readonly move: readonly string[];
  readonly remove: readonly string[];
}

/**
 * A commit's text checked to be one; `where` names it and `dir` the folder in the error.
 * @throws ModelError saying to save there again or remove the staging folder.
 */
export function parseSaveCommit(text: string, where: string, dir: string, staging: string): SaveCommit {
  try {
    const json = JSON.parse(text) as Partial<SaveCommit> | null;
    const names = (v: unknown) => Array.isArray(v) && v.every((n) => typeof n === 'string' && n !== '' && !/[/\\]/.test(n) && n !== '.' && n !== '..');
    if (!names(json?.move) || !names(json?.remove)) throw new Error('expected {"move": [names], "remove": [names]}');
    return json as SaveCommit;
  } catch (err) {
    throw new ModelError(`${where} is not a save's commit (${err instanceof Error ? err.message : String(err)}); the files of ${dir} may be mixed: save the adapter or model there again, or remove ${staging}`);
  }
}

/** How a picked folder was found: no save interrupted there, one interrupted before its commit, or one after it. */
export type PickedSave = 'none' | 'uncommitted' | 'committed';

/** A picked file's path in the picked folder (webkitRelativePath; '' for a file picked alone). */
function relativePath(file: File): string {
  return (file as File & { webkitRelativePath?: string }).webkitRelativePath ?? '';
}

/** The folder of a picked file within the picked folder ('' for files picked one by one). */
export function pickedFolderOf(file: File): string {
  const rel = relativePath(file);
  return rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
}

/**
 * The picked folder: the first folder of the files' paths, which a browser starts with the picked folder's name (even
 * where it holds no file of its own, only subfolders); failing that, the shallowest folder among the files ('' for
 * files picked one by one).
 */
function pickedRoot(picked: readonly File[]): string {
  const folders = picked.map(pickedFolderOf);
  const top = folders[0]?.split('/')[0] ?? '';
  if (folders.every((f) => f === top || f.startsWith(`${top}/`))) return top;
  return folders.reduce<string | undefined>((a, f) => (a === undefined || f.split('/').length < a.split('/').length ? f : a), undefined) ?? '';
}

/** Subfolders named where a picked folder lacks a file they hold; the rest are counted. */
const subfoldersNamed = 3;

/**
 * The subfolders of a picked folder (`folder`, by default the picked folder itself) whose own files include one that
 * `holds` accepts, as picked paths (e.g. `llama-7b/hf`), shallowest first, never a save's staging folder nor one inside
 * it; with `advice`, telling the user to pick one of them, naming `what` they hold and at most a few, e.g.
 * `config.json is in llama-7b/hf: pick that folder` ('' where none holds it). For a loader that reads only the picked
 * folder's own files to say where a folder picked one level too high keeps them.
 */
export function pickedSubfoldersHolding(
  picked: readonly File[],
  what: string,
  holds: (name: string) => boolean,
  folder?: string,
): { folders: string[]; advice: string } {
  const root = folder ?? pickedRoot(picked);
  const under = (f: string) => (root === '' ? f !== '' : f.startsWith(`${root}/`));
  const found = new Set(
    picked.filter((f) => holds(f.name)).map(pickedFolderOf).filter((f) => under(f) && !f.split('/').includes(saveStagingName)),
  );
  const folders = [...found].sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : a > b ? 1 : 0));
  if (folders.length === 0) return { folders, advice: '' };
  const named = folders.slice(0, subfoldersNamed).join(', ');
  const more = folders.length > subfoldersNamed ? ` (and ${folders.length - subfoldersNamed} more)` : '';
  const advice = folders.length === 1 ? `${what} is in ${named}: pick that folder` : `${what} is in ${named}${more}: pick one of those folders`;
  return { folders, advice };
}

/**
 * The files of one folder among picked files (a folder picked with `<input webkitdirectory>` or the File System Access
 * API, whose files carry their path in `webkitRelativePath`; or files picked one by one), by name, as Node's loaders
 * read that folder: its own files only, not those of its subfolders nor a save's lock file (.save-lock: a browser cannot
 * tell whether its process still runs, so a save in progress reads as one interrupted), and where a save into it was interrupted (see
 * saveFilesTogether), the staging folder's files never as the folder's: before the save's commit the folder's earlier
 * files are read (as the save left them), after it the files the save's completion leaves (its renames and removals
 * applied to the list, the picked folder itself unchanged; Node's next load or save of the folder completes it on disk).
 * `folder` defaults to the picked folder itself (the first folder of the files' paths, as a browser names them).
 *
 * @throws ModelError where the staging folder's commit.json is not a commit.
 * @example
 * const { files, save } = await pickedFolderFiles([...input.files]);
 * const config = files.get('config.json');
 */
export async function pickedFolderFiles(picked: readonly File[], folder?: string): Promise<{ files: Map<string, File>; save: PickedSave }> {
  const root = folder ?? pickedRoot(picked);
  const stagingDir = root === '' ? saveStagingName : `${root}/${saveStagingName}`;
  const own = new Map(picked.filter((f) => pickedFolderOf(f) === root && !isSaveLockFile(f.name)).map((f) => [f.name, f]));
  const staged = new Map(picked.filter((f) => pickedFolderOf(f) === stagingDir).map((f) => [f.name, f]));
  const commitFile = staged.get(saveCommitName);
  if (commitFile === undefined) return { files: own, save: staged.size > 0 ? 'uncommitted' : 'none' };
  const where = root === '' ? 'the picked folder' : root;
  const commit = parseSaveCommit(await commitFile.text(), `${stagingDir}/${saveCommitName}`, where, stagingDir);
  for (const name of commit.remove) own.delete(name);
  for (const name of commit.move) {
    const file = staged.get(name);
    if (file !== undefined) own.set(name, file); // not renamed in yet; otherwise the folder's is the save's
  }
  return { files: own, save: 'committed' };
}
