// Checkpoint rotation (--save-total-limit) and the best model loaded at the end, as transformers 4.57.6's Trainer:
// _rotate_checkpoints keeps the limit with best_model_checkpoint counted in it (test/fixtures/sft/rotate-checkpoints.json,
// from the wheel's own methods), a checkpoint it cannot remove is a warning and the next save tries again, and
// _load_best_model loads what best_model_checkpoint names.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { progressReporter } from '@huatuo/cli';
import { listCheckpoints, pruneCheckpoints, runFiles, train, writeCheckpoint, type ProgressEvent, type TrainConfig, type TrainerState } from '@huatuo/sft';
import { refuseRemovals } from './checkpoint-versions.js';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

before(async () => {
  await initWebGPU();
});

const state: TrainerState = { step: 1, totalSteps: 10, microBatchSize: 1, gradientAccumulation: 1, history: [], bestValLoss: null, bestStep: null, recipeKey: 'k' };
const optimizer = { state: [], paramGroups: [] };
const writeAdapter = (dir: string) => runFiles.writeFile(join(dir, 'adapter_model.safetensors'), new Uint8Array(8));
const save = (out: string, step: number) => writeCheckpoint(out, step, { state: { ...state, step }, optimizer }, writeAdapter);
const steps = async (out: string) => (await listCheckpoints(out)).map((c) => c.step);

interface RotateCase {
  steps: number[];
  limit: number;
  /** best_model_checkpoint: a step of the output folder, 'other' (another folder's checkpoint-2) or none. */
  best: number | 'other' | null;
  kept: number[];
}

test("pruning keeps the checkpoints transformers 4.57.6's _rotate_checkpoints keeps: the best counted within the limit, the newest and the best with a limit of 1", async () => {
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/sft/rotate-checkpoints.json', import.meta.url), 'utf8')) as { cases: RotateCase[] };
  for (const c of fixture.cases) {
    const out = tmp();
    for (const step of c.steps) await save(out, step);
    const best = c.best === null ? null : c.best === 'other' ? join(tmp(), 'checkpoint-2') : join(out, `checkpoint-${c.best}`);
    assert.deepEqual(await pruneCheckpoints(out, c.limit, best), []);
    assert.deepEqual(await steps(out), c.kept, JSON.stringify(c));
  }
});

test('a checkpoint that pruning cannot remove is a warning naming it, and the next save removes it', async () => {
  // Refused outright (the rename refused: checkpoint-1 left whole), or once renamed checkpoint-1.removing (left there,
  // no longer listed).
  for (const from of [1, 2]) {
    const out = tmp();
    for (const step of [1, 2, 3, 4]) await save(out, step);
    const oldest = join(out, 'checkpoint-1');
    let hook = refuseRemovals(oldest, from, { renames: true });
    const warnings = await pruneCheckpoints(out, 2, null).finally(() => hook.restore());
    const where = `removal refused from its ${from}. rm on`;
    assert.equal(warnings.length, 1, `${where}: ${warnings.join('; ')}`);
    assert.match(warnings[0]!, new RegExp(`^could not remove ${oldest.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}, a checkpoint older than the 2 that --save-total-limit keeps \\(EACCES.*The run goes on, and the next save tries again`), where);
    assert.ok(existsSync(from === 1 ? oldest : `${oldest}.removing`) && !existsSync(join(out, 'checkpoint-2')), `${where}: the removals after it went on`);
    assert.deepEqual(await steps(out), from === 1 ? [1, 3, 4] : [3, 4], where);

    // A save while the removal is still refused warns again, naming the folder; the next one removes it.
    hook = refuseRemovals(oldest, 1, { renames: true });
    const again = await (async () => [...(await save(out, 5)).warnings, ...(await pruneCheckpoints(out, 2, null))])().finally(() => hook.restore());
    assert.equal(again.length, 1, `${where}: ${again.join('; ')}`);
    assert.ok(again[0]!.startsWith(`could not remove ${oldest}${from === 1 ? '' : '.removing'}, `), `${where}: ${again[0]}`);
    await save(out, 6);
    assert.deepEqual(await pruneCheckpoints(out, 2, null), [], where);
    assert.deepEqual(readdirSync(out).sort(), ['checkpoint-5', 'checkpoint-6'], `${where}: the leftover is gone`);
  }
});

/** A run of the small recipe (micro-batches of 2, accumulation 2). */
async function run(config: TrainConfig, options: { resume?: string; events?: ProgressEvent[]; onProgress?: (e: ProgressEvent) => void; stopAfterStep?: number } = {}) {
  const { data, model, base } = await smallRun(config);
  try {
    const onProgress = (e: ProgressEvent) => {
      options.events?.push(e);
      options.onProgress?.(e);
    };
    return await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, resume: options.resume ?? null, onProgress, stopAfterStep: options.stopAfterStep });
  } finally {
    base.model.dispose();
  }
}

test('a run whose pruning cannot remove an old checkpoint goes on, warning with the folder on its save, and a later save removes it', async () => {
  const out = tmp();
  const config = smallConfig(writeRecords(tmp(), smallRecords(12)), out, { epochRemainder: 'step', maxSteps: 3, valSetSize: 0, evalSteps: 1, saveSteps: 1, saveTotalLimit: 1 });
  const oldest = join(out, 'checkpoint-1');
  const events: ProgressEvent[] = [];
  const hook = refuseRemovals(oldest);
  // Refused at the save of step 2 only.
  const result = await run(config, { events, onProgress: (e) => e.kind === 'save' && e.step === 2 && hook.restore() }).finally(() => hook.restore());
  assert.deepEqual([result.interrupted, result.state.step], [false, 3], 'the run ends');
  const saves = events.filter((e) => e.kind === 'save');
  assert.deepEqual(saves.map((e) => [e.step, e.warnings?.length ?? 0]), [[1, 0], [2, 1], [3, 0]]);
  assert.ok(saves[1]!.warnings![0]!.startsWith(`could not remove ${oldest}, a checkpoint older than the 1 that --save-total-limit keeps (EACCES`), saves[1]!.warnings![0]);
  assert.deepEqual(readdirSync(out).filter((n) => n.startsWith('checkpoint-')), ['checkpoint-3'], 'the save of step 3 removed it');

  let printed = '';
  const report = progressReporter({ write: (s: string) => (printed += s) }, false);
  for (const e of events) report(e);
  assert.ok(printed.includes(`step 2/3  checkpoint ${join(out, 'checkpoint-2')}\nwarning: could not remove ${oldest}, `), printed);
});

test("with --save-total-limit 1 a finished run keeps only best_model_checkpoint's checkpoint, as the end of the Trainer's train() removes the newest that rotation kept beside it", async () => {
  const out = tmp();
  // Evaluations and saves every 2 steps of 5 and, as transformers 4.57.6 saves, after the last: checkpoints 2, 4 and 5, the best among 2 and 4.
  const config = smallConfig(writeRecords(tmp(), smallRecords(12)), out, { epochRemainder: 'step', maxSteps: 5, evalSteps: 2, saveSteps: 2, saveTotalLimit: 1 });
  const events: ProgressEvent[] = [];
  const result = await run(config, { events });
  assert.deepEqual(events.filter((e) => e.kind === 'save').map((e) => e.step), [2, 4, 5]);
  const best = result.state.best_model_checkpoint!;
  assert.match(best, /checkpoint-[24]$/);
  assert.deepEqual(await steps(out), [Number(best.slice(best.lastIndexOf('-') + 1))], 'checkpoint-5, kept beside the best until the end, is gone');
  assert.deepEqual(readFileSync(join(out, 'adapter_model.safetensors')), readFileSync(join(best, 'adapter_model.safetensors')), 'the final adapter is the best');
  assert.equal(events.find((e) => e.kind === 'done')!.warnings, undefined);

  // Without a validation set no best is named, and the newest stays.
  const out2 = tmp();
  await run({ ...config, outputDir: out2, valSetSize: 0 });
  assert.deepEqual(await steps(out2), [5]);
});

test("the best model loaded at the end is the checkpoint best_model_checkpoint names, as the Trainer's _load_best_model, also where the best step has no checkpoint", async () => {
  const out = tmp();
  // Evaluations every step, checkpoints every 2: steps 2, 4 and 6.
  const config = smallConfig(writeRecords(tmp(), smallRecords(12)), out, { epochRemainder: 'step', maxSteps: 6, evalSteps: 1, saveSteps: 2 });
  await run(config, { stopAfterStep: 4 });
  // As the run would stand at step 4 had step 3's evaluation been its best: best_global_step 3, which has no checkpoint,
  // so the saves since left best_model_checkpoint naming the earlier best's, checkpoint-2 (_save_checkpoint). Later
  // evaluations do not beat it.
  const at4 = join(out, 'checkpoint-4', 'trainer_state.json');
  const written = JSON.parse(readFileSync(at4, 'utf8')) as TrainerState;
  const best2 = join(out, 'checkpoint-2');
  writeFileSync(at4, JSON.stringify({ ...written, best_metric: -1, best_global_step: 3, best_model_checkpoint: best2, bestValLoss: -1, bestStep: 3 }));

  const events: ProgressEvent[] = [];
  const result = await run(config, { resume: 'latest', events });
  assert.equal(result.state.step, 6);
  assert.equal(result.state.best_model_checkpoint, best2, 'the save of step 6 finds no checkpoint-3');
  assert.equal(result.bestCheckpoint, best2);
  assert.deepEqual(readFileSync(join(out, 'adapter_model.safetensors')), readFileSync(join(best2, 'adapter_model.safetensors')), "the final adapter is checkpoint-2's");
  assert.notDeepEqual(readFileSync(join(out, 'adapter_model.safetensors')), readFileSync(join(out, 'checkpoint-6', 'adapter_model.safetensors')));
  const done = events.find((e) => e.kind === 'done')!;
  assert.equal(done.warnings?.length, 1);
  assert.match(done.warnings![0]!, new RegExp(`came at step 3, where no checkpoint was saved .*\\(--save-steps 2, --eval-steps 1\\): best_model_checkpoint still names ${best2.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}`));

  // Where that folder lost its adapter, the Trainer warns and keeps the last step's model.
  const out2 = tmp();
  const config2 = { ...config, outputDir: out2 };
  await run(config2, { stopAfterStep: 4 });
  const missing = join(out2, 'checkpoint-2');
  const at4b = join(out2, 'checkpoint-4', 'trainer_state.json');
  writeFileSync(at4b, JSON.stringify({ ...JSON.parse(readFileSync(at4b, 'utf8')), best_metric: -1, best_global_step: 3, best_model_checkpoint: missing, bestValLoss: -1, bestStep: 3 }));
  await runFiles.remove(join(missing, 'adapter_model.safetensors'));
  const events2: ProgressEvent[] = [];
  const second = await run(config2, { resume: 'latest', events: events2 });
  assert.equal(second.bestCheckpoint, null);
  assert.deepEqual(readFileSync(join(out2, 'adapter_model.safetensors')), readFileSync(join(out2, 'checkpoint-6', 'adapter_model.safetensors')), "the final adapter is the last step's");
  assert.ok(events2.find((e) => e.kind === 'done')!.warnings![0]!.startsWith(`could not load the best model: ${missing} (trainer_state.json's best_model_checkpoint) holds no adapter_model.safetensors`));
});
