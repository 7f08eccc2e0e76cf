// A checkpoint saved over an earlier one of its step (a resumed run saving that step again), interrupted at each of
// its changes to the file system: killed (a child process ended by SIGKILL there, as a crash) or failed there for a
// full disk (ENOSPC). Each leaves the step's earlier checkpoint or the new one, byte for byte, for a resume to read
// (--resume alone or naming checkpoint-N), never a leftover counted as a checkpoint, and the next save writes the new one.
// A failure to remove the earlier checkpoint once the new one is in place is a warning: the run goes on, and the next
// save or resume removes it.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { progressReporter } from '@huatuo/cli';
import { findResumePoint, listCheckpoints, pruneCheckpoints, readCheckpoint, train, type ProgressEvent, type TrainConfig } from '@huatuo/sft';
import { interruptAtChange } from '../llama/fs-interrupt.js';
import { runKilledChild, type ChildSaveEnd } from '../llama/folder-save-run.js';
import { refuseRemovals, saveCheckpointVersion } from './checkpoint-versions.js';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

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

test('a checkpoint saved over its step whose earlier copy cannot be removed is saved with a warning naming that folder, and the next save removes it', async () => {
  const old = await oldRun();
  const reference = copyOf(old);
  await saveCheckpointVersion(reference, 2, 'new');
  const newStep2 = tree(join(reference, 'checkpoint-2'));
  // The removal refused outright (checkpoint-2.old left whole), or after its trainer_state.json went (left incomplete).
  for (const from of [1, 2]) {
    const dir = copyOf(old);
    const aside = join(dir, 'checkpoint-2.old');
    let hook = { restore() {} };
    const saved = await saveCheckpointVersion(dir, 2, 'new', () => (hook = refuseRemovals(aside, from))).finally(() => hook.restore());
    const where = `removal refused from its ${from}. rm on`;
    assert.equal(saved.dir, join(dir, 'checkpoint-2'), where);
    assert.equal(saved.warnings.length, 1, `${where}: ${saved.warnings.join('; ')}`);
    assert.ok(saved.warnings[0]!.startsWith(`could not remove ${aside}, the earlier checkpoint of its step`), saved.warnings[0]);
    assert.match(saved.warnings[0]!, /EACCES.*the next save or --resume in this output folder tries again to remove it; you can also delete it yourself/, where);
    assert.deepEqual(tree(join(dir, 'checkpoint-2')), newStep2, `${where}: the new checkpoint is in place`);
    assert.ok(existsSync(aside), where);
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.dir), [join(dir, 'checkpoint-1'), join(dir, 'checkpoint-2')], `${where}: the leftover is not listed`);
    assert.equal(await findResumePoint('latest', dir), join(dir, 'checkpoint-2'), where);
    assert.equal(await findResumePoint(join(dir, 'checkpoint-2'), dir), join(dir, 'checkpoint-2'), where);

    // A save while the removal is still refused warns again; the next one removes it.
    hook = refuseRemovals(aside);
    const again = await saveCheckpointVersion(dir, 3, 'new').finally(() => hook.restore());
    assert.equal(again.warnings.length, 1, `${where}: the next save tries again`);
    const next = await saveCheckpointVersion(dir, 4, 'new');
    assert.deepEqual(next.warnings, [], where);
    assert.deepEqual(readdirSync(dir).sort(), ['checkpoint-1', 'checkpoint-2', 'checkpoint-3', 'checkpoint-4'], `${where}: the leftover is gone`);
  }
});

test('a resumed run saving a step again goes on when the earlier checkpoint of that step cannot be removed, warning with the folder, and the next resume removes it', async () => {
  const dataPath = writeRecords(tmp(), smallRecords(12));
  const out = tmp();
  // 10 training records, micro-batches of 2, accumulation 2: 6 steps, checkpoints at 3 and 6.
  const config: TrainConfig = smallConfig(dataPath, out, { epochRemainder: 'step', numEpochs: 2, evalSteps: 3, saveSteps: 3 });
  const run = async (resume: string | null, events: ProgressEvent[] = []) => {
    const { data, model, base } = await smallRun(config);
    try {
      return await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, resume, onProgress: (e) => events.push(e) });
    } finally {
      base.model.dispose();
    }
  };
  await run(null);
  const aside = join(out, 'checkpoint-6.old');
  const events: ProgressEvent[] = [];
  const hook = refuseRemovals(aside);
  const resumed = await run(join(out, 'checkpoint-3'), events).finally(() => hook.restore());
  assert.equal(resumed.interrupted, false);
  assert.equal(resumed.state.step, 6, 'the run ends');
  const save6 = events.find((e) => e.kind === 'save' && e.step === 6)!;
  assert.equal(save6.checkpoint, join(out, 'checkpoint-6'));
  assert.equal(save6.warnings?.length, 1);
  assert.ok(save6.warnings![0]!.startsWith(`could not remove ${aside}, `), save6.warnings![0]);
  assert.ok(existsSync(aside) && existsSync(join(out, 'adapter_model.safetensors')), 'the leftover stays; the final adapter is written');
  assert.equal((await readCheckpoint(join(out, 'checkpoint-6'))).state.step, 6);

  let printed = '';
  const report = progressReporter({ write: (s: string) => (printed += s) }, false);
  for (const e of events) report(e);
  assert.ok(printed.includes(`step 6/6  checkpoint ${join(out, 'checkpoint-6')}\nwarning: could not remove ${aside}, `), printed);

  const resumeEvents: ProgressEvent[] = [];
  await run('latest', resumeEvents);
  const resumeEvent = resumeEvents.find((e) => e.kind === 'resume')!;
  assert.deepEqual([resumeEvent.checkpoint, resumeEvent.warnings], [join(out, 'checkpoint-6'), undefined]);
  assert.ok(!existsSync(aside), 'the resume removes the leftover');
});
