// Runs every test/**/*.test.ts file under Node's test runner, TypeScript through tsx, with
// packages resolved to their sources. Arguments narrow the run: `npm test -- test/tensor`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name === 'node_modules' || name === 'fixtures') continue;
      collect(join(path, name), out);
    }
  } else if (path.endsWith('.test.ts')) {
    out.push(relative(root, path));
  }
  return out;
}

const check = spawnSync(process.execPath, [join(root, 'scripts/gen-kernels.mjs'), '--check'], { stdio: 'inherit' });
if (check.status !== 0) process.exit(check.status ?? 1);

const targets = process.argv.slice(2);
const files = (targets.length ? targets : ['test']).flatMap((t) => collect(join(root, t), []));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// No background matmul search in test processes (it would dispatch and read back beside the tests'
// own counts): products use the default choice, and the search's tests run it explicitly.
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', HUATUO_MATMUL_TUNE: process.env.HUATUO_MATMUL_TUNE ?? '0' };
const result = spawnSync(
  process.execPath,
  ['--conditions=source', '--import', 'tsx', '--import', './test/setup.ts', '--test', '--test-reporter=spec', ...files],
  { stdio: 'inherit', cwd: root, env },
);
process.exit(result.status ?? 1);
