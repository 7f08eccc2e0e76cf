// A checkpoint saved over an earlier one of its step (a resumed run saving that step again), interrupted at each of
// its changes to the file system: killed (a child process ended by SIGKILL there, as a crash) or failed there for a
// full disk (ENOSPC). Each leaves the step's earlier checkpoint or the new one, byte for byte, for a resume to read
// (--resume alone or naming checkpoint-N), never a leftover counted as a checkpoint, and the next save writes the new one.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { progressReporter } from '@huatuo/cli';
import { findResumePoint, listCheckpoints, pruneCheckpoints, readCheckpoint } from '@huatuo/sft';
import { interruptAtChange } from '../llama/fs-interrupt.js';
import { runKilledChild, type ChildSaveEnd } from '../llama/folder-save-run.js';
import { saveCheckpointVersion } from './checkpoint-versions.js';

const CHILD = fileURLToPath(new URL('./checkpoint-replace-child.ts', import.meta.url));

before(async () => {
  await initWebGPU();
});

/** Every file under `dir` by its path relative to it, as bytes. */
function tree(dir: string, root = dir, out = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) tree(path, root, out);
    else out.set(relative(root, path), readFileSync(path));
  }
  return out;
}

function copyOf(dir: string): string {
  const copy = mkdtempSync(join(tmpdir(), 'huatuo-ckpt-'));
  cpSync(dir, copy, { recursive: true });
  return copy;
}

/** An output folder holding the old checkpoints of steps 1 and 2. */
async function oldRun(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-ckpt-old-'));
  await saveCheckpointVersion(dir, 1, 'old');
  await saveCheckpointVersion(dir, 2, 'old');
  return dir;
}

/** Runs checkpoint-replace-child.ts: the new checkpoint of step 2 into `dir`, killed at change `killAt` (0: none). */
function childSave(dir: string, killAt: number): Promise<ChildSaveEnd> {
  return runKilledChild(CHILD, [dir, '2'], killAt);
}

/**
 * The output folder after an interrupted save of step 2: checkpoints 1 and 2 are listed (nothing else, so
 * --save-total-limit 2 removes none), a resume from the newest or from checkpoint-2 reads step 2's old checkpoint or
 * its new one, byte for byte, and the next save writes the new one and leaves nothing else.
 */
async function checkAfterInterruption(out: string, old: Map<string, Buffer>, step2: { old: Map<string, Buffer>; new: Map<string, Buffer> }, where: string): Promise<'old' | 'new'> {
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [1, 2], `${where}: the checkpoints listed`);
  await pruneCheckpoints(out, 2, null);
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [1, 2], `${where}: --save-total-limit 2 keeps both`);
  const latest = await findResumePoint('latest', out);
  const which = tree(latest).get('trainer_state.json')!.equals(step2.old.get('trainer_state.json')!) ? 'old' : 'new';
  assert.deepEqual(tree(latest), step2[which], `${where}: the newest checkpoint (${latest}) is step 2's ${which} one, byte for byte`);
  assert.equal(await findResumePoint(join(out, 'checkpoint-2'), out), latest, `${where}: --resume checkpoint-2 finds it`);
  assert.equal((await readCheckpoint(latest)).state.recipeKey, which, where);
  await saveCheckpointVersion(out, 2, 'new');
  const expected = new Map([...old].filter(([path]) => path.startsWith('checkpoint-1')));
  for (const [path, bytes] of step2.new) expected.set(join('checkpoint-2', path), bytes);
  assert.deepEqual(tree(out), expected, `${where}: the next save writes the new checkpoint`);
  assert.deepEqual(readdirSync(out).sort(), ['checkpoint-1', 'checkpoint-2'], `${where}: nothing else left in the folder`);
  return which;
}

test('a checkpoint saved over its step killed at any of its changes to the folder leaves the earlier checkpoint or the new one to resume from', async () => {
  const old = await oldRun();
  const oldTree = tree(old);
  const reference = copyOf(old);
  const full = await childSave(reference, 0);
  assert.equal(full.signal, null, full.stderr);
  const step2 = { old: tree(join(old, 'checkpoint-2')), new: tree(join(reference, 'checkpoint-2')) };
  assert.notDeepEqual(step2.new, step2.old);
  const seen = { old: 0, new: 0 };
  // Two saves run at a time; each folder is checked once its save is killed.
  const killAts = Array.from({ length: full.changes! }, (_, i) => i + 1);
  for (let i = 0; i < killAts.length; i += 2) {
    const pair = killAts.slice(i, i + 2).map((killAt) => ({ killAt, dir: copyOf(old) }));
    const runs = await Promise.all(pair.map(({ killAt, dir }) => childSave(dir, killAt)));
    for (const [j, { killAt, dir }] of pair.entries()) {
      assert.equal(runs[j]!.signal, 'SIGKILL', `killed at change ${killAt}: ${runs[j]!.stderr}`);
      seen[await checkAfterInterruption(dir, oldTree, step2, `killed at change ${killAt} of ${full.changes}`)]++;
    }
  }
  assert.ok(seen.old > 0 && seen.new > 0, `the kills fell before and after the new checkpoint's rename: ${JSON.stringify(seen)}`);
});

test('a checkpoint saved over its step failing for a full disk at any of its writes leaves the earlier checkpoint to resume from', async () => {
  const old = await oldRun();
  const oldTree = tree(old);
  const reference = copyOf(old);
  const counter = interruptAtChange(0, 'enospc');
  await saveCheckpointVersion(reference, 2, 'new').finally(() => counter.restore());
  const step2 = { old: tree(join(old, 'checkpoint-2')), new: tree(join(reference, 'checkpoint-2')) };
  for (let failAt = 1; failAt <= counter.changes; failAt++) {
    let hook = counter;
    const dir = copyOf(old);
    let failed: unknown = null;
    await saveCheckpointVersion(dir, 2, 'new', () => (hook = interruptAtChange(failAt, 'enospc')))
      .catch((err: unknown) => (failed = err))
      .finally(() => hook.restore());
    const where = `ENOSPC at change ${failAt} of ${counter.changes}`;
    assert.notEqual(failed, null, `${where}: the save reports the failure`);
    assert.match(String(failed), /ENOSPC|no space/, where);
    assert.equal(await checkAfterInterruption(dir, oldTree, step2, where), 'old', `${where}: the failed save leaves the earlier checkpoint`);
  }
});

test('a resume from a checkpoint set aside by an interrupted save of its step says so, naming where the next save puts it', () => {
  let printed = '';
  progressReporter({ write: (s: string) => (printed += s) }, false)({ kind: 'resume', step: 2, totalSteps: 10, elapsedSec: 0, checkpoint: join('out', 'checkpoint-2.old') });
  assert.equal(
    printed,
    `resumed from ${join('out', 'checkpoint-2.old')} at step 2/10 (the checkpoint of that step as it was before a save of the step was interrupted; the next save renames it back to ${join('out', 'checkpoint-2')})\n`,
  );
});
