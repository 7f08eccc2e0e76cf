// The lock of a save into a folder (see folder-save-node.ts): a file created exclusively in the folder, naming the saving
// process, so that two saves never run there at once and a load never takes a live save's staging folder for an
// interrupted one's. A lock left by a process that is gone (killed, power lost) is taken over.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readlink, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { saveLockName, SaveInProgressError, type SaveLockHolder } from './folder-save.js';
import { syncDir } from './write-atomic-node.js';

/** A folder's save lock held by this process (see {@link lockFolderForSave}). */
export interface FolderSaveLock {
  /** The folder locked. */
  readonly dir: string;
  /** Its lock file (`<dir>/.save-lock`). */
  readonly file: string;
  readonly holder: SaveLockHolder;
  /** Removes the lock file where it is still this lock's; idempotent. */
  release(): Promise<void>;
}

/**
 * The lock file's content: the holder, a token telling this lock from a later one of the same process, and on Linux
 * what tells the process apart from another given its pid after it died: the boot, the pid namespace (a container's
 * pids are not the host's), and the process's start time (clock ticks after boot, /proc/<pid>/stat).
 */
interface LockContent extends SaveLockHolder {
  readonly token: string;
  readonly bootId?: string;
  readonly pidNamespace?: string;
  readonly processStart?: string;
}

/** A lock file as read: its text, its content where it is a lock's JSON, and when it was last changed. */
interface FoundLock {
  readonly text: string;
  readonly content: LockContent | null;
  readonly mtimeMs: number;
}

/** Whether the process holding a lock runs: yes, no, or it cannot be told from here (another host or container). */
type HolderState = 'alive' | 'dead' | 'elsewhere';

/** How often a waiting save or load looks at the lock again. */
const pollMs = 50;
/** A lock file that is not a lock's JSON this long after its last change was left by a process killed while writing it. */
const unreadableStaleMs = 10_000;
/** How long a takeover waits for another process's takeover of the same lock, which takes milliseconds. */
const takeoverWaitMs = 5_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const codeOf = (err: unknown) => (err as { code?: unknown }).code;

/** The state and start time of process `pid` from /proc/<pid>/stat; null where there is no /proc (not Linux) or no such process. */
async function procStat(pid: number | 'self'): Promise<{ state: string; start: string } | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses; the start time is field 22.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return fields[0] === undefined || fields[19] === undefined ? null : { state: fields[0], start: fields[19] };
  } catch {
    return null;
  }
}

let thisMachine: Promise<{ bootId?: string; pidNamespace?: string; processStart?: string }> | undefined;

/** This process's boot, pid namespace and start time, where the platform tells them (Linux). */
function machineFacts(): Promise<{ bootId?: string; pidNamespace?: string; processStart?: string }> {
  thisMachine ??= (async () => {
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
    const pidNamespace = await readlink('/proc/self/ns/pid').catch(() => '');
    const processStart = (await procStat('self'))?.start ?? '';
    return { ...(bootId && { bootId }), ...(pidNamespace && { pidNamespace }), ...(processStart && { processStart }) };
  })();
  return thisMachine;
}

/** The lock file `file`, or null where there is none. */
async function readLock(file: string): Promise<FoundLock | null> {
  let text: string;
  let mtimeMs: number;
  try {
    [text, mtimeMs] = await Promise.all([readFile(file, 'utf8'), stat(file).then((s) => s.mtimeMs)]);
  } catch (err) {
    if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return null;
    throw err;
  }
  let content: LockContent | null = null;
  try {
    const json = JSON.parse(text) as Partial<LockContent> | null;
    if (Number.isSafeInteger(json?.pid) && json!.pid! > 0 && typeof json?.hostname === 'string' && typeof json.started === 'string' && typeof json.token === 'string') {
      content = json as LockContent;
    }
  } catch {
    // not JSON: judged by its age
  }
  return { text, content, mtimeMs };
}

/**
 * Whether the process holding a lock runs. A lock of another host, or of another pid namespace of this one (a
 * container), cannot be judged. On this host the process is gone where the machine has booted since, where
 * `process.kill(pid, 0)` finds no such process (ESRCH; EPERM means it runs under another user), or, on Linux, where
 * the pid is a zombie or a later process's (another start time).
 */
async function holderState(found: FoundLock): Promise<HolderState> {
  const lock = found.content;
  if (lock === null) return Date.now() - found.mtimeMs > unreadableStaleMs ? 'dead' : 'alive';
  if (lock.hostname !== hostname()) return 'elsewhere';
  const here = await machineFacts();
  if (lock.bootId !== undefined && here.bootId !== undefined && lock.bootId !== here.bootId) return 'dead';
  if (lock.pidNamespace !== undefined && here.pidNamespace !== undefined && lock.pidNamespace !== here.pidNamespace) return 'elsewhere';
  try {
    process.kill(lock.pid, 0);
  } catch (err) {
    if (codeOf(err) === 'ESRCH') return 'dead';
    if (codeOf(err) !== 'EPERM') throw err;
  }
  const proc = await procStat(lock.pid);
  if (proc !== null && (proc.state === 'Z' || proc.state === 'X')) return 'dead';
  if (proc !== null && lock.processStart !== undefined && proc.start !== lock.processStart) return 'dead';
  return 'alive';
}

/** Creates `file` holding `text` where no file has that name; false where one has. */
async function createExclusive(file: string, text: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'wx', 0o644);
  } catch (err) {
    if (codeOf(err) === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(text);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(file, { force: true }).catch(() => undefined);
    throw err;
  }
  await handle.close();
  return true;
}

/** Removes `file` where it still holds `text` (a lock of ours, not one that replaced it). */
async function removeIfStill(file: string, text: string): Promise<void> {
  const now = await readFile(file, 'utf8').catch(() => null);
  if (now === text) await rm(file, { force: true });
}

/** A new lock's content for this process. */
async function newLock(): Promise<LockContent> {
  return { pid: process.pid, hostname: hostname(), started: new Date().toISOString(), token: randomBytes(8).toString('hex'), ...(await machineFacts()) };
}

/**
 * The refusal of a save (`doing` 'save') or a load that waited `waitedMs` for the save holding `dir` (`found`, in
 * `file`) to end.
 */
function saveInProgressError(dir: string, file: string, found: FoundLock, state: HolderState, doing: 'save' | 'load', waitedMs = 0): SaveInProgressError {
  const lock = found.content;
  const holder = lock === null ? null : { pid: lock.pid, hostname: lock.hostname, started: lock.started };
  const who =
    lock === null
      ? `another save, whose lock file ${file} names no process yet`
      : `process ${lock.pid} on ${state === 'elsewhere' ? `${lock.hostname} (another host or container, whose processes cannot be checked from here)` : `this host (${lock.hostname})`} since ${lock.started}, which holds ${file}`;
  const waited = waitedMs >= 1000 ? ` (waited ${Math.round(waitedMs / 1000)} s)` : '';
  const advice = doing === 'save' ? 'wait for that save to end and save again, or save into another folder' : 'load it once that save ends';
  const stale = lock === null || state === 'elsewhere' ? `; if no save is running there, remove ${file}` : '';
  return new SaveInProgressError(dir, file, holder, `${dir} is being saved into by ${who}${waited}: ${advice}${stale}`);
}

/**
 * Takes over the lock `found` in `file`, whose holder is gone: under a second lock (`<file>.takeover`, held for
 * milliseconds) so that of several processes taking it over at once, none removes the lock another has just taken;
 * the lock is removed only if it is still `found` and still dead.
 */
async function takeOver(dir: string, file: string, found: FoundLock): Promise<void> {
  const mutex = `${file}.takeover`;
  const mine = JSON.stringify(await newLock());
  const deadline = Date.now() + takeoverWaitMs;
  while (!(await createExclusive(mutex, mine))) {
    const other = await readLock(mutex);
    if (other === null) continue;
    const state = await holderState(other);
    if (state === 'dead') {
      await rm(mutex, { force: true }); // its process died taking over: a second crash, within milliseconds of the first
      continue;
    }
    if (Date.now() > deadline) throw saveInProgressError(dir, mutex, other, state, 'save');
    await sleep(pollMs);
  }
  try {
    const now = await readLock(file);
    if (now !== null && now.text === found.text && (await holderState(now)) === 'dead') await rm(file, { force: true });
  } finally {
    await removeIfStill(mutex, mine);
  }
}

/**
 * Locks the folder `dir` (made where missing) for a save: creates `<dir>/.save-lock` exclusively, naming this process
 * (pid, host name, start time), and returns the lock to release once the save ends. Where another save holds it, it
 * waits up to `waitMs` (default 0: none) for that save to end, then throws. A lock whose process is gone on this host
 * (killed, or the machine rebooted since) is taken over; one of another host, or of another container of this one,
 * is not, since its process cannot be checked from here. Two saves of one process into one folder exclude each other
 * too. saveFilesTogether, saveAdapter and saveMergedModel take it themselves; take it to read the folder and then
 * save into it as one step, passing it to saveFilesTogether and finishInterruptedSave.
 *
 * @throws SaveInProgressError naming the folder and the process holding it (and the lock file, where it cannot be told
 *   whether that process runs).
 * @example
 * const lock = await lockFolderForSave('out/lora');
 * try {
 *   await saveFilesTogether('out/lora', write, { lock });
 * } finally {
 *   await lock.release();
 * }
 */
export async function lockFolderForSave(dir: string, options: { waitMs?: number } = {}): Promise<FolderSaveLock> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, saveLockName);
  const content = await newLock();
  const text = `${JSON.stringify(content, null, 1)}\n`;
  const start = Date.now();
  for (;;) {
    if (await createExclusive(file, text)) break;
    const found = await readLock(file);
    if (found === null) continue; // released meanwhile
    const state = await holderState(found);
    if (state === 'dead') {
      await takeOver(dir, file, found);
      continue;
    }
    if (Date.now() - start >= (options.waitMs ?? 0)) throw saveInProgressError(dir, file, found, state, 'save', Date.now() - start);
    await sleep(pollMs);
  }
  await syncDir(dir);
  let released = false;
  const holder = { pid: content.pid, hostname: content.hostname, started: content.started };
  return {
    dir,
    file,
    holder,
    async release() {
      if (released) return;
      released = true;
      await removeIfStill(file, text);
    },
  };
}

/** Whether `lock` is a held lock of `dir`. */
export function isLockOf(lock: FolderSaveLock, dir: string): boolean {
  return resolve(lock.dir) === resolve(dir);
}

/**
 * Waits while a live save holds `dir`, until `waitMs` after `since` (then throws its SaveInProgressError): 'free' where
 * no lock is there, 'dead' where one of a process that is gone is.
 */
export async function waitForLiveSave(dir: string, options: { waitMs: number; since: number }): Promise<'free' | 'dead'> {
  const file = join(dir, saveLockName);
  for (;;) {
    const found = await readLock(file);
    if (found === null) return 'free';
    const state = await holderState(found);
    if (state === 'dead') return 'dead';
    const waited = Date.now() - options.since;
    if (waited >= options.waitMs) throw saveInProgressError(dir, file, found, state, 'load', waited);
    await sleep(pollMs);
  }
}
