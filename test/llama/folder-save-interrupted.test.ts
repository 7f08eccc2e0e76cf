// Saves of an adapter or a merged model over an earlier one, interrupted at each of their changes to the file system:
// killed (a child process ended by SIGKILL there, as a crash) or failed there for a full disk (ENOSPC). Each leaves the
// folder loading as the earlier save or the new one, byte for byte, never a mix; the files the save does not own stay,
// and the next save succeeds.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, loadAdapter, loadLlama } from '@huatuo/llama';
import { interruptAtChange } from './fs-interrupt.js';
import { saveVersion } from './folder-save-versions.js';
import { childSave } from './folder-save-run.js';

before(async () => {
  await initWebGPU();
});

type Kind = 'adapter' | 'model';

/** The files directly in `dir` by name, as bytes (folders left out: a staging folder is not read by a load). */
function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(dir).sort()) if (statSync(join(dir, name)).isFile()) out.set(name, readFileSync(join(dir, name)));
  return out;
}

/** Loads the folder as the library's users do: an adapter into a fresh small model, or a merged model. */
async function load(kind: Kind, dir: string): Promise<void> {
  if (kind === 'model') {
    (await loadLlama(dir)).dispose();
    return;
  }
  const model = createRandomLlama(configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 }), { seed: 9 });
  try {
    await loadAdapter(model, dir);
  } finally {
    model.dispose();
  }
}

/** The old save of `kind` in a fresh folder with a note beside it, which no save owns. */
async function oldFolder(kind: Kind): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), `huatuo-${kind}-old-`));
  await saveVersion(kind, dir, 'old');
  writeFileSync(join(dir, 'README.md'), 'notes\n');
  return dir;
}

function copyOf(dir: string): string {
  const copy = mkdtempSync(join(tmpdir(), 'huatuo-save-'));
  cpSync(dir, copy, { recursive: true });
  return copy;
}


/**
 * The folder after an interrupted save, loaded: the old save's files or the new one's, the note kept (and with
 * `cleanedUp`, nothing else: a save that failed removes its staging folder, a load completes a committed one); the next
 * save succeeds.
 */
async function checkAfterInterruption(kind: Kind, dir: string, oldFiles: Map<string, Buffer>, newFiles: Map<string, Buffer>, where: string, cleanedUp = false): Promise<'old' | 'new'> {
  await load(kind, dir).catch((err: unknown) => assert.fail(`${where}: the folder does not load: ${String(err)}`));
  const after = files(dir);
  if (cleanedUp) assert.deepEqual(readdirSync(dir).sort(), [...after.keys()], `${where}: the failed save left nothing behind`);
  const which = [...after.keys()].join() === [...oldFiles.keys()].join() && [...after].every(([n, b]) => b.equals(oldFiles.get(n)!)) ? 'old' : 'new';
  assert.deepEqual(after, which === 'old' ? oldFiles : newFiles, `${where}: the folder holds the old save or the new one, byte for byte`);
  await saveVersion(kind, dir, 'new');
  assert.deepEqual(files(dir), newFiles, `${where}: the next save writes the new one`);
  assert.deepEqual(readdirSync(dir).sort(), [...newFiles.keys()], `${where}: nothing else left in the folder`);
  return which;
}

for (const kind of ['adapter', 'model'] as const) {
  const a = kind === 'adapter' ? 'an' : 'a';
  test(`${a} ${kind} save killed at any of its changes to the folder leaves the earlier ${kind} or the new one, and the next save succeeds`, async () => {
    const old = await oldFolder(kind);
    const oldFiles = files(old);
    const reference = copyOf(old);
    const full = await childSave(kind, reference, 0);
    assert.equal(full.signal, null, full.stderr);
    const newFiles = files(reference);
    assert.equal(newFiles.get('README.md')?.toString(), 'notes\n', 'the note is kept');
    assert.notDeepEqual(newFiles, oldFiles);
    const seen = { old: 0, new: 0 };
    // Two saves run at a time; each folder is checked once its save is killed.
    const killAts = Array.from({ length: full.changes! }, (_, i) => i + 1);
    for (let i = 0; i < killAts.length; i += 2) {
      const pair = killAts.slice(i, i + 2).map((killAt) => ({ killAt, dir: copyOf(old) }));
      const runs = await Promise.all(pair.map(({ killAt, dir }) => childSave(kind, dir, killAt)));
      for (const [j, { killAt, dir }] of pair.entries()) {
        assert.equal(runs[j]!.signal, 'SIGKILL', `killed at change ${killAt}: ${runs[j]!.stderr}`);
        seen[await checkAfterInterruption(kind, dir, oldFiles, newFiles, `killed at change ${killAt} of ${full.changes}`)]++;
      }
    }
    assert.ok(seen.old > 0 && seen.new > 0, `the kills fell before and after the save's commit: ${JSON.stringify(seen)}`);
  });

  test(`${a} ${kind} save failing for a full disk at any of its writes leaves the earlier ${kind}, and the next save succeeds`, async () => {
    const old = await oldFolder(kind);
    const oldFiles = files(old);
    const reference = copyOf(old);
    const counter = interruptAtChange(0, 'enospc');
    await saveVersion(kind, reference, 'new').finally(() => counter.restore());
    const newFiles = files(reference);
    for (let failAt = 1; failAt <= counter.changes; failAt++) {
      let hook = counter;
      const dir = copyOf(old);
      let failed: unknown = null;
      await saveVersion(kind, dir, 'new', () => (hook = interruptAtChange(failAt, 'enospc')))
        .catch((err: unknown) => (failed = err))
        .finally(() => hook.restore());
      const where = `ENOSPC at change ${failAt}`;
      if (failed === null) {
        assert.deepEqual(files(dir), newFiles, `${where}: the save reported success, so the folder holds the new one`);
        continue;
      }
      assert.match(String(failed), /ENOSPC|no space/, where);
      await checkAfterInterruption(kind, dir, oldFiles, newFiles, where, true);
    }
  });
}
