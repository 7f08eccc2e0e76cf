// Runs a save in a child process killed (SIGKILL) at its n-th change to the file system (0: none), as a crash would
// end it: folder-save-child.ts (the new save of folder-save-versions.ts into a folder) or another such child script;
// or one that pauses part way, beside other saves and loads (folder-save-lock-child.ts).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FOLDER_SAVE_CHILD = fileURLToPath(new URL('./folder-save-child.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The child's end: the signal that killed it, the changes a save that was not killed made, its stderr. */
export interface ChildSaveEnd {
  signal: NodeJS.Signals | null;
  changes: number | null;
  stderr: string;
}

/** Runs `script` with `args`, then the change to be killed at; the child prints `{ changes }` when it is not killed. */
export function runKilledChild(script: string, args: string[], killAt: number): Promise<ChildSaveEnd> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, ...args, String(killAt)], {
      cwd: repoRoot,
      env: { ...process.env, HUATUO_MATMUL_TUNE: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (_code, signal) => resolve({ signal, changes: stdout === '' ? null : (JSON.parse(stdout) as { changes: number }).changes, stderr }));
  });
}

/** The new save of an adapter or a model into `dir`, killed at change `killAt` (0: none). */
export function childSave(kind: 'adapter' | 'model', dir: string, killAt: number): Promise<ChildSaveEnd> {
  return runKilledChild(FOLDER_SAVE_CHILD, [kind, dir], killAt);
}

const FOLDER_SAVE_LOCK_CHILD = fileURLToPath(new URL('./folder-save-lock-child.ts', import.meta.url));

/** How a save in a child process of folder-save-lock-child.ts ended: saved, or refused with an error. */
export type ChildSaveResult = { saved: true } | { error: { name: string; message: string } };

/** A save running in a child process: its pid, its pause (where it was asked to pause), and its end. */
export interface RunningSave {
  pid: number;
  /** Resolves once the save has paused (never where it was not asked to). */
  paused: Promise<void>;
  /** Lets a paused save go on. */
  resume(): void;
  /** Kills the child (SIGKILL, as a crash); resolves with the signal that ended it. */
  kill(): Promise<NodeJS.Signals | null>;
  /** How each of its saves ended. */
  done: Promise<ChildSaveResult[]>;
}

const running = new Set<RunningSave>();

/** Kills the child saves still running (a test that failed before letting a paused one go on), so the tests can end. */
export async function killChildSaves(): Promise<void> {
  await Promise.all([...running].map((save) => save.kill()));
}

/**
 * Starts saving version `version` of `kind` into `dir` in a child process, `times` times one after the other, pausing
 * the first at `pauseAt` (see folder-save-lock-child.ts).
 */
export function startChildSave(kind: 'adapter' | 'model', dir: string, version: 'old' | 'new', pauseAt: 'none' | 'staged' | 'committed' = 'none', times = 1): RunningSave {
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', FOLDER_SAVE_LOCK_CHILD, kind, dir, version, pauseAt, String(times)], {
    cwd: repoRoot,
    env: { ...process.env, HUATUO_MATMUL_TUNE: '0' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let onPause = () => {};
  let onExitFirst = (_err: Error) => {};
  const paused = new Promise<void>((resolve, reject) => ((onPause = resolve), (onExitFirst = reject)));
  proc.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (stdout.startsWith('paused\n')) onPause();
  });
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      running.delete(save);
      onExitFirst(new Error(`the save in child ${proc.pid} ended with ${signal ?? code} before pausing: ${stdout}${stderr}`));
      resolve({ code, signal });
    }),
  );
  const done = exit.then(({ code, signal }) => {
    const results = stdout.split('\n').filter((line) => line.startsWith('{'));
    if (code !== 0 || results.length !== times) throw new Error(`the save in child ${proc.pid} ended with ${signal ?? code}: ${stdout}${stderr}`);
    return results.map((line) => JSON.parse(line) as ChildSaveResult);
  });
  const kill = async () => {
    done.catch(() => undefined);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    return (await exit).signal;
  };
  paused.catch(() => undefined); // awaited only where a pause was asked for
  const save: RunningSave = { pid: proc.pid!, paused, resume: () => proc.stdin.write('go\n'), kill, done };
  running.add(save);
  return save;
}
