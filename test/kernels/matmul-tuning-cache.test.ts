// The matmul tuning cache across builds and processes: a choice is used only under the fingerprint of the
// kernels and check cases it passed (on this adapter and driver), entries of other fingerprints stay in the
// file, a malformed file or entry is ignored with a warning naming the file, and writers keep each other's entries.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { matmulTuningReport, readyMatmul, type MatmulChoice } from '@huatuo/tensor';
import { resetTuning, tuningCacheKey } from '@huatuo/tensor/internal';
import { gpu } from '../tensor/helpers.js';

const info = await gpu();
const STALE = '2001-01-01T00:00:00.000Z';
const naive: MatmulChoice = { main: { kernel: 'v1' }, fallback: { kernel: 'v1' }, decode: null };

type Cache = Record<string, { version?: number; choice?: unknown; measuredAt?: string; report?: { measuredAt: string } }>;

/** Runs `body` with the tuning cache in a fresh folder holding `cache` (a string: the file's text), the search on (`npm test` turns it off) and its timing kept short. */
async function withCache(cache: Cache | string | null, body: (file: string) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-tune-cache-'));
  const file = join(dir, 'huatuo-webgpu', 'tiles.json');
  const vars = { XDG_CACHE_HOME: dir, HUATUO_MATMUL_TUNE: '1', HUATUO_MATMUL_TUNE_MS: '1', ...env };
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  if (cache !== null) {
    mkdirSync(join(dir, 'huatuo-webgpu'));
    writeFileSync(file, typeof cache === 'string' ? cache : JSON.stringify(cache));
  }
  resetTuning();
  try {
    await body(file);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    resetTuning();
    rmSync(dir, { recursive: true, force: true });
  }
}

function readCache(file: string): Cache {
  return JSON.parse(readFileSync(file, 'utf8')) as Cache;
}

/** The warnings emitted while `body` runs. */
async function warningsOf(body: () => unknown): Promise<string[]> {
  const seen: string[] = [];
  const listen = (w: Error) => seen.push(w.message);
  process.on('warning', listen);
  try {
    await body();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', listen);
  }
  return seen;
}

test('a choice cached by another build (other kernels or check cases) is not used: the search checks the candidates again, and the other entries stay', async () => {
  let current: Cache = {};
  let adapter = '';
  await withCache(null, async (file) => {
    await readyMatmul();
    current = readCache(file);
    adapter = matmulTuningReport()!.adapter;
  });
  const [key, entry] = Object.entries(current)[0]!;
  assert.notEqual(key, adapter, 'the key holds more than the adapter');
  // As the build before the kernels' fingerprint wrote it (under the adapter alone), and as a build of other kernels would.
  const otherBuild = `${adapter}|kernels 0123456789abcdef`;
  const stale = { ...entry, choice: naive, measuredAt: STALE, report: { ...entry.report!, measuredAt: STALE, choice: naive } };
  await withCache({ [adapter]: { ...stale, version: 4 }, [otherBuild]: stale }, async (file) => {
    const choice = await readyMatmul();
    const report = matmulTuningReport()!;
    assert.notEqual(report.measuredAt, STALE, 'the search ran');
    assert.ok(report.candidates.every((c) => c.status === 'ok' || c.reason), 'every candidate was checked');
    assert.deepEqual(choice, report.choice);
    const after = readCache(file);
    assert.deepEqual(Object.keys(after).sort(), [adapter, otherBuild, key].sort());
    assert.deepEqual(after[otherBuild], stale, "another build's entry is kept as it was");
    assert.equal(after[key]!.measuredAt, report.measuredAt);
  });
  // The current fingerprint's entry is used as it is, with no search.
  await withCache({ [key]: stale }, async () => {
    assert.deepEqual(await readyMatmul(), naive);
    assert.equal(matmulTuningReport()!.measuredAt, STALE);
  });
});

test('the fingerprint changes with the kernels the check compiles and the adapter, and is the same for the same ones', () => {
  const key = tuningCacheKey(info);
  assert.equal(tuningCacheKey({ ...info }), key);
  assert.notEqual(tuningCacheKey({ ...info, adapterName: `${info.adapterName} (another driver)` }), key);
  // Another subgroup size compiles other kernels.
  const sg = { ...info, features: new Set([...info.features, 'subgroups'] as const), subgroupMinSize: 16, subgroupMaxSize: 16 };
  const sg8 = { ...sg, subgroupMinSize: 8, subgroupMaxSize: 8 };
  assert.notEqual(tuningCacheKey(sg).split('|kernels ')[1], tuningCacheKey(sg8).split('|kernels ')[1]);
});

test('a malformed cache file, or an entry of another shape, is ignored with one warning naming the file', async () => {
  for (const text of ['{"truncated": {"version": 5, "cho', '[1, 2]']) {
    await withCache(
      text,
      async (file) => {
        const warnings = await warningsOf(() => readyMatmul());
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.ok(warnings[0]!.includes(file), warnings[0]);
        assert.equal(matmulTuningReport(), null, 'nothing cached is used');
      },
      { HUATUO_MATMUL_TUNE: '0' },
    );
  }
  const key = tuningCacheKey(info);
  for (const choice of [{ main: 'v1' }, { main: { kernel: 'v1' }, fallback: { kernel: 'v1' } }, null]) {
    await withCache(
      { [key]: { version: 5, choice, measuredAt: STALE } },
      async (file) => {
        const warnings = await warningsOf(() => readyMatmul());
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.ok(warnings[0]!.includes(file), warnings[0]);
      },
      { HUATUO_MATMUL_TUNE: '0' },
    );
  }
  // With the search on, the malformed file is replaced by its result.
  await withCache('not json', async (file) => {
    await warningsOf(() => readyMatmul());
    assert.deepEqual(Object.keys(readCache(file)), [key]);
  });
});

test('processes writing the cache at once keep each other\'s entries', async () => {
  await withCache(null, async (file) => {
    const writers = 4;
    const each = 25;
    const script = `
      import { setTuningCacheEntry } from '@huatuo/tensor/internal';
      const id = process.argv.at(-1);
      for (let i = 0; i < ${each}; i++) setTuningCacheEntry(id + '/' + i, { measuredAt: new Date().toISOString() }, 1000, () => 0);
    `;
    const run = (id: number) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script, String(id)], { stdio: 'inherit', env: process.env });
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${id} exited with ${code}`))));
      });
    await Promise.all(Array.from({ length: writers }, (_, i) => run(i)));
    const keys = Object.keys(readCache(file));
    assert.equal(keys.length, writers * each, `entries lost: ${writers * each - keys.length}`);
  });
});
