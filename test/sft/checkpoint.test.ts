// Checkpoint folders: the optimizer state comes back as the optimizer's own state dict, and a folder
// whose optimizer.json is not one is refused naming the folder, before any optimizer is touched (pruning:
// checkpoint-rotate.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, readCheckpoint, runFiles, writeCheckpoint, type TrainerState } from '@huatuo/sft';
import type { OptimizerStateDict } from '@huatuo/tensor';
import { tmp } from './trainer-setup.js';

const state: TrainerState = { step: 1, totalSteps: 2, microBatchSize: 1, gradientAccumulation: 1, history: [], bestValLoss: null, bestStep: null, recipeKey: 'k' };
const optimizer: OptimizerStateDict = {
  state: [{ step: 3, buffers: { m: new Float32Array([1, 2]), v: new Float32Array([3, 4]) } }, null],
  paramGroups: [{ options: { lr: 0.5, betas: [0.9, 0.999] }, params: [0, 1] }],
};
/** The checks read only that the adapter file exists; its content is the model's business. */
const writeAdapter = (dir: string) => runFiles.writeFile(join(dir, 'adapter_model.safetensors'), new Uint8Array(8));

test('a checkpoint gives back the optimizer state dict it was written with', async () => {
  const { dir } = await writeCheckpoint(tmp(), 1, { state, optimizer }, writeAdapter);
  const back = await readCheckpoint(dir);
  assert.deepEqual(back.optimizer, optimizer);
  assert.deepEqual(back.state, state);
});

test('an optimizer.json that is not an optimizer state dict is refused naming the checkpoint', async () => {
  for (const [json, fragment] of [
    ['{"m": {"$tensor": "t0"}}', /fields state and paramGroups/],
    ['{"state": [{"step": 1, "buffers": {"m": 3}}], "paramGroups": []}', /state 0 should be null or \{step, buffers of tensors\}/],
    ['{"state": [], "paramGroups": [{"options": {}, "params": ["a"]}]}', /paramGroups 0 should be/],
  ] as const) {
    const { dir } = await writeCheckpoint(tmp(), 1, { state, optimizer }, writeAdapter);
    writeFileSync(join(dir, 'optimizer.json'), json);
    await assert.rejects(readCheckpoint(dir), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(dir) && fragment.test(e.message), json);
  }
});
