// The serve command's `until` (what a program embedding the command waits on before the server closes): when it
// fails, the server closes and the command fails with its error, so the process ends instead of serving on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const childScript = fileURLToPath(new URL('./serve-until-child.ts', import.meta.url));
/** Far more than the child needs to load the demo model and start (about 5 s here). */
const EXIT_WITHIN_MS = 90_000;

test('an until that fails closes the server and fails the command with its error, and the process ends', async () => {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', childScript], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))),
    new Promise<'running'>((resolve) => (timer = setTimeout(() => resolve('running'), EXIT_WITHIN_MS))),
  ]);
  clearTimeout(timer);
  if (ended === 'running') child.kill('SIGKILL');
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { url?: string; error?: string });
  assert.ok(lines[0]?.url?.startsWith('http://127.0.0.1:'), `the server started: ${stdout}${stderr}`);
  assert.notEqual(ended, 'running', `the process still ran ${EXIT_WITHIN_MS} ms on, its server open: ${stdout}`);
  assert.equal(ended, 1);
  assert.deepEqual(lines[1], { error: 'until failed on purpose' }, 'the command fails with the error of until');
  await assert.rejects(fetch(`${lines[0]!.url}/health`, { signal: AbortSignal.timeout(5000) }), 'the server is closed');
});
