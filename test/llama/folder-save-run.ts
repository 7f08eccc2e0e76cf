// Runs a save in a child process killed (SIGKILL) at its n-th change to the file system (0: none), as a crash would
// end it: folder-save-child.ts (the new save of folder-save-versions.ts into a folder) or another such child script.
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
