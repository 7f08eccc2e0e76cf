// Checkpoint rotation (--save-total-limit) as transformers 4.57.6's Trainer: _rotate_checkpoints keeps the limit with
// best_model_checkpoint counted in it (test/fixtures/sft/rotate-checkpoints.json, from the wheel's own methods).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints, pruneCheckpoints, runFiles, writeCheckpoint, type TrainerState } from '@huatuo/sft';
import { tmp } from './trainer-setup.js';

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
    await pruneCheckpoints(out, c.limit, best);
    assert.deepEqual(await steps(out), c.kept, JSON.stringify(c));
  }
});
