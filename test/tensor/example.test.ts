// The README example runs as its own process and its printed loss falls to the noise floor.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

test('examples/regression.ts prints a loss every 20 steps that falls to the noise variance and recovers w = 3, b = -2', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', 'tsx', 'examples/regression.ts'], {
    cwd: root,
    timeout: 60_000,
  });
  const losses = [...stdout.matchAll(/^step (\d+): loss ([\d.]+)$/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
  assert.deepEqual(losses.map(([s]) => s), [20, 40, 60, 80, 100, 120, 140, 160, 180, 200], `printed steps:\n${stdout}`);
  const first = losses[0]![1];
  const last = losses[losses.length - 1]![1];
  assert.ok(last < first / 20, `loss did not fall: ${first} -> ${last}\n${stdout}`);
  // The noise has standard deviation 0.1, so the best fit leaves a mean squared error near 0.01.
  assert.ok(last < 0.02, `final loss ${last} is above the noise floor\n${stdout}`);
  const fit = /^w = (-?[\d.]+), b = (-?[\d.]+)$/m.exec(stdout);
  assert.ok(fit, `no fitted parameters printed:\n${stdout}`);
  assert.ok(Math.abs(Number(fit[1]) - 3) < 0.05 && Math.abs(Number(fit[2]) + 2) < 0.05, `fit ${fit[0]} is not y = 3x - 2`);
});
