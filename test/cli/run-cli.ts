// The command line run as a user runs it: a child Node process on a TypeScript entry (cli-child.ts runs
// huatuo-train's program), its output collected.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_CHILD = fileURLToPath(new URL('./cli-child.ts', import.meta.url));

export interface ProcessRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` (a path) with `args` from the repository's root; `onStdout` sees the output so far after each chunk. */
export function runScript(script: string, args: readonly string[], onStdout?: (text: string, proc: ChildProcess) => void): Promise<ProcessRun> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      onStdout?.(stdout, proc);
    });
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs huatuo-train with `args`. */
export function runCli(args: readonly string[], onStdout?: (text: string, proc: ChildProcess) => void): Promise<ProcessRun> {
  return runScript(CLI_CHILD, args, onStdout);
}
