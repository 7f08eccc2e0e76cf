// Saves into one folder at once, from two processes or one, and loads beside a save: the folder's lock refuses the
// second save, naming the folder and the process saving there, and a load waits for the save to end, so neither
// touches the first save's staging folder. A lock left by a process that is gone is taken over.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, finishInterruptedSave, loadAdapter, lockFolderForSave, SaveInProgressError, saveLockName, saveStagingName } from '@huatuo/llama';
import { killChildSaves, startChildSave, type ChildSaveResult } from './folder-save-run.js';
import { saveVersion } from './folder-save-versions.js';

before(async () => {
  await initWebGPU();
});
after(killChildSaves);

type Kind = 'adapter' | 'model';

/** The files directly in `dir` by name, as bytes. */
function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(dir).sort()) if (statSync(join(dir, name)).isFile()) out.set(name, readFileSync(join(dir, name)));
  return out;
}

/** Every entry under `dir` with its bytes (folders as ''), to tell that a folder was not touched. */
function tree(dir: string, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      out.set(`${prefix}${name}/`, '');
      for (const [k, v] of tree(path, `${prefix}${name}/`)) out.set(k, v);
    } else out.set(`${prefix}${name}`, readFileSync(path).toString('base64'));
  }
  return out;
}

/** A fresh folder holding the old save of `kind` and a note no save owns. */
async function oldFolder(kind: Kind): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), `huatuo-lock-${kind}-`));
  await saveVersion(kind, dir, 'old');
  writeFileSync(join(dir, 'README.md'), 'notes\n');
  return dir;
}

/** The files of `dir` once `version` of `kind` is saved over it (on a copy). */
async function filesAfterSave(kind: Kind, dir: string, version: 'old' | 'new'): Promise<Map<string, Buffer>> {
  const copy = mkdtempSync(join(tmpdir(), 'huatuo-lock-ref-'));
  cpSync(dir, copy, { recursive: true });
  await saveVersion(kind, copy, version);
  return files(copy);
}

/** The folder holds `expected` and nothing else: no staging folder, no lock file. */
function assertHoldsOnly(dir: string, expected: Map<string, Buffer>, what: string): void {
  assert.deepEqual(files(dir), expected, `${what}: the folder's files, byte for byte`);
  assert.deepEqual(readdirSync(dir).sort(), [...expected.keys()], `${what}: nothing else left in the folder`);
}

function assertRefused(result: ChildSaveResult, dir: string, pid: number): void {
  assert.ok('error' in result, `the second save was refused: ${JSON.stringify(result)}`);
  assert.equal(result.error.name, 'SaveInProgressError', result.error.message);
  for (const part of [dir, `process ${pid}`, hostname()]) assert.ok(result.error.message.includes(part), `the refusal names ${part}: ${result.error.message}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The LoRA rank of the adapter loaded from `dir` into a small model: the old save's is 4, the new one's 8. */
async function loadedRank(dir: string): Promise<number | undefined> {
  const model = createRandomLlama(configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 }), { seed: 9 });
  try {
    await loadAdapter(model, dir);
    return model.loraConfig?.r;
  } finally {
    model.dispose();
  }
}

for (const [kind, pauseAt] of [['adapter', 'staged'], ['model', 'committed']] as const) {
  test(`${kind === 'adapter' ? 'an' : 'a'} ${kind} save into a folder another process is saving into (paused ${pauseAt === 'staged' ? 'before' : 'after'} its commit) is refused, naming the folder and that process; the first save completes whole`, async () => {
    const dir = await oldFolder(kind);
    const newFiles = await filesAfterSave(kind, dir, 'new');
    const first = startChildSave(kind, dir, 'new', pauseAt);
    await first.paused;
    const staged = tree(join(dir, saveStagingName));
    const [second] = await startChildSave(kind, dir, 'old').done;
    assertRefused(second!, dir, first.pid);
    assert.deepEqual(tree(join(dir, saveStagingName)), staged, "the first save's staging folder is as it left it");
    first.resume();
    assert.deepEqual(await first.done, [{ saved: true }]);
    assertHoldsOnly(dir, newFiles, 'after the first save');
  });
}

test('two processes saving adapters into one folder over and over at once: each save completes or is refused, and the folder holds the last one whole', async (t) => {
  const dir = await oldFolder('adapter');
  const expected = { new: await filesAfterSave('adapter', dir, 'new'), old: await filesAfterSave('adapter', dir, 'old') };
  const versions = ['new', 'old'] as const;
  const runs = await Promise.all(versions.map((v) => startChildSave('adapter', dir, v, 'none', 30).done));
  const outcomes = runs.map((results) => ({ saved: results.filter((r) => 'saved' in r).length, refused: results.filter((r) => 'error' in r).length }));
  t.diagnostic(`saves completed and refused, by process: ${JSON.stringify(outcomes)}`);
  for (const r of runs.flat()) if ('error' in r) assert.equal(r.error.name, 'SaveInProgressError', r.error.message);
  assert.ok(outcomes.every((o) => o.saved > 0), `each process saved at least once: ${JSON.stringify(outcomes)}`);
  const holds = versions.filter((v) => files(dir).size === expected[v].size && [...files(dir)].every(([n, b]) => expected[v].get(n)?.equals(b)));
  assert.equal(holds.length, 1, `the folder holds one saved version byte for byte: ${JSON.stringify(outcomes)}`);
  assertHoldsOnly(dir, expected[holds[0]!], 'after both processes');
  assert.equal(await loadedRank(dir), holds[0] === 'new' ? 8 : 4);
});

test('two saves of one process into one folder at once: the second is refused, the first completes whole', async () => {
  const dir = await oldFolder('adapter');
  const expected = { new: await filesAfterSave('adapter', dir, 'new'), old: await filesAfterSave('adapter', dir, 'old') };
  const results = await Promise.allSettled([saveVersion('adapter', dir, 'new'), saveVersion('adapter', dir, 'old')]);
  const refused = results.filter((r) => r.status === 'rejected');
  assert.equal(refused.length, 1, `one save is refused: ${results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'saved')).join('; ')}`);
  const reason = (refused[0] as PromiseRejectedResult).reason as unknown;
  assert.ok(reason instanceof SaveInProgressError, String(reason));
  assert.equal(reason.holder?.pid, process.pid);
  assert.equal(reason.dir, dir);
  assertHoldsOnly(dir, results[0]!.status === 'fulfilled' ? expected.new : expected.old, 'after both saves');
});

test('a lock left by a save killed part way is taken over: a load reads the earlier adapter at once, and the next save succeeds', { timeout: 60_000 }, async () => {
  const dir = await oldFolder('adapter');
  const oldFiles = files(dir);
  const newFiles = await filesAfterSave('adapter', dir, 'new');
  // Killed with its files all staged, before its commit.
  const save = startChildSave('adapter', dir, 'new', 'staged');
  await save.paused;
  assert.equal(await save.kill(), 'SIGKILL');
  assert.ok(readdirSync(join(dir, saveStagingName)).length > 0, 'the killed save left its staging folder');
  const lock = JSON.parse(readFileSync(join(dir, saveLockName), 'utf8')) as { pid: number; hostname: string; started: string };
  assert.equal(lock.hostname, hostname(), 'the lock names this host');
  assert.ok(!Number.isNaN(Date.parse(lock.started)), `the lock says when it was taken: ${lock.started}`);
  assert.throws(() => process.kill(lock.pid, 0), { code: 'ESRCH' }, 'the lock names the killed process');
  const loading = Date.now();
  assert.equal(await loadedRank(dir), 4, 'the load reads the earlier adapter');
  assert.ok(Date.now() - loading < 20_000, 'the load did not wait for the dead save');
  assert.ok(!existsSync(join(dir, saveLockName)), "the load removed the dead process's lock");
  assert.deepEqual(files(dir), oldFiles);
  await saveVersion('adapter', dir, 'new');
  assertHoldsOnly(dir, newFiles, 'after the next save');
});

test('a lock naming a pid that now belongs to a later process, or left empty long ago, is taken over; one of another host, or empty and fresh, refuses the save', async (t) => {
  const dir = await oldFolder('adapter');
  const newFiles = await filesAfterSave('adapter', dir, 'new');
  const lockFile = join(dir, saveLockName);
  const lock = { pid: process.pid, hostname: hostname(), started: '2026-01-01T00:00:00.000Z', token: '0' };

  writeFileSync(lockFile, JSON.stringify({ ...lock, hostname: 'another-host' }));
  const before = tree(dir);
  await assert.rejects(saveVersion('adapter', dir, 'new'), (err: unknown) => {
    assert.ok(err instanceof SaveInProgressError, String(err));
    for (const part of [dir, 'another-host', `process ${process.pid}`, `remove ${lockFile}`]) assert.ok(err.message.includes(part), `names ${part}: ${err.message}`);
    return true;
  });
  assert.deepEqual(tree(dir), before, 'refused before anything was written');
  await assert.rejects(finishInterruptedSave(dir, { keepUncommitted: true, waitMs: 200 }), SaveInProgressError, 'a load waits for it, then is refused');

  writeFileSync(lockFile, '');
  await assert.rejects(saveVersion('adapter', dir, 'new'), SaveInProgressError, 'an empty lock of a moment ago is a save creating it');
  utimesSync(lockFile, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  await saveVersion('adapter', dir, 'new');
  assertHoldsOnly(dir, newFiles, 'after taking over the empty lock');

  if (!existsSync('/proc/self/stat')) return t.skip('no /proc: a process start time cannot be read');
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!; // field 22: the start time, in clock ticks after boot
  writeFileSync(lockFile, JSON.stringify({ ...lock, processStart: String(Number(started) - 1) }));
  await saveVersion('adapter', dir, 'old');
  assert.ok(!existsSync(lockFile), 'the lock of the earlier process with this pid was taken over');
  writeFileSync(lockFile, JSON.stringify({ ...lock, processStart: started }));
  await assert.rejects(saveVersion('adapter', dir, 'new'), SaveInProgressError, 'the lock of this very process is live');
});

test('a load of a folder while another process saves there waits for the save to end and reads it, never touching its staging folder', { timeout: 120_000 }, async () => {
  const dir = await oldFolder('adapter');
  const newFiles = await filesAfterSave('adapter', dir, 'new');
  const save = startChildSave('adapter', dir, 'new', 'staged');
  await save.paused;
  const staged = tree(join(dir, saveStagingName));
  await assert.rejects(finishInterruptedSave(dir, { keepUncommitted: true, waitMs: 300 }), (err: unknown) => {
    assert.ok(err instanceof SaveInProgressError, String(err));
    assert.equal(err.holder?.pid, save.pid);
    assert.ok(err.message.includes('load it once that save ends'), err.message);
    return true;
  });
  let settled = 0;
  const loading = loadedRank(dir).finally(() => settled++);
  // As `huatuo merge --out` does before merging: completes or discards an interrupted save, never a live one.
  const finishing = finishInterruptedSave(dir).finally(() => settled++);
  await sleep(1500);
  assert.equal(settled, 0, 'the load and finishInterruptedSave wait while the save runs');
  assert.deepEqual(tree(join(dir, saveStagingName)), staged, "the save's staging folder is as it left it");
  save.resume();
  assert.deepEqual(await save.done, [{ saved: true }]);
  assert.equal(await loading, 8, 'the load reads the new adapter');
  assert.equal(await finishing, 'none');
  assertHoldsOnly(dir, newFiles, 'after the save');
});

test('a lock given for another folder is refused', async () => {
  const [a, b] = [mkdtempSync(join(tmpdir(), 'huatuo-lock-a-')), mkdtempSync(join(tmpdir(), 'huatuo-lock-b-'))];
  const lock = await lockFolderForSave(a);
  try {
    await assert.rejects(finishInterruptedSave(b, { lock }), /the lock given is of .*, not of/);
  } finally {
    await lock.release();
  }
  assert.deepEqual(readdirSync(a), []);
});

/** Delays each of fs/promises' calls by a random few milliseconds until restored, so that concurrent calls interleave. */
function jitterFs(): () => void {
  const promises = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const names = ['open', 'readFile', 'stat', 'rm'];
  const originals = new Map(names.map((n) => [n, promises[n]!]));
  for (const [name, original] of originals) {
    promises[name] = async (...args: unknown[]) => {
      await sleep(Math.random() * 3);
      return original.apply(fs.promises, args);
    };
  }
  syncBuiltinESMExports();
  return () => {
    for (const [name, original] of originals) promises[name] = original;
    syncBuiltinESMExports();
  };
}

test("several takers of a dead process's lock at once: one holds the folder, the others are refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-lock-takeover-'));
  const gone = spawnSync(process.execPath, ['-e', '']).pid;
  assert.throws(() => process.kill(gone, 0), { code: 'ESRCH' });
  const restore = jitterFs();
  try {
    for (let round = 0; round < 30; round++) {
      writeFileSync(join(dir, saveLockName), JSON.stringify({ pid: gone, hostname: hostname(), started: '2026-01-01T00:00:00.000Z', token: String(round) }));
      const results = await Promise.allSettled(Array.from({ length: 4 }, () => lockFolderForSave(dir)));
      const held = results.filter((r) => r.status === 'fulfilled');
      assert.equal(held.length, 1, `round ${round}: one taker holds the lock: ${results.map((r) => (r.status === 'fulfilled' ? 'held' : String(r.reason))).join('; ')}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof SaveInProgressError, String(r.reason));
      const lock = (held[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof lockFolderForSave>>>).value;
      await lock.release();
      assert.deepEqual(readdirSync(dir), [], 'released: no lock file, no takeover file');
    }
  } finally {
    restore();
  }
});
