// Every float tensor read from a file is refused when it holds NaN or infinity, naming the tensor and
// the file: base weights (loadLlama), a PEFT adapter (loadAdapter), a checkpoint's optimizer state
// (readCheckpoint), and values that only overflow when the base is read as f16.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, cpSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { hasF16, initWebGPU } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, loadAdapter, loadLlama, openSafetensors, saveAdapter, saveMergedModel, SafetensorsError } from '@huatuo/llama';
import { readCheckpoint, writeCheckpoint } from '@huatuo/sft';
import { SMALL_MODEL, tmp } from './trainer-setup.js';

/** Overwrites element `index` of tensor `name` in a safetensors file with `value` (F32 or F16 data). */
async function poke(file: string, name: string, index: number, value: number): Promise<void> {
  const st = await openSafetensors(file);
  const info = st.info(name);
  await st.close();
  const bytes = info.dtype === 'F32' ? new Uint8Array(new Float32Array([value]).buffer) : new Uint8Array(new Uint16Array([Number.isNaN(value) ? 0x7e00 : value > 0 ? 0x7c00 : 0xfc00]).buffer);
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, info.offset + index * bytes.length);
  closeSync(fd);
}

function refusal(file: string, tensor: string, ...words: string[]) {
  return (e: unknown) => {
    assert.ok(e instanceof Error, String(e));
    for (const w of [file, tensor, ...words]) assert.ok(e.message.includes(w), `"${e.message}" should mention ${w}`);
    return true;
  };
}

let modelDir: string;

before(async () => {
  await initWebGPU();
  const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 5 });
  modelDir = join(tmp(), 'model');
  await saveMergedModel(model, modelDir);
  model.dispose();
});

test('loadLlama refuses base weights holding NaN or infinity, naming the tensor and the file', async () => {
  for (const value of [NaN, Infinity]) {
    const dir = join(tmp(), 'model');
    cpSync(modelDir, dir, { recursive: true });
    const file = join(dir, 'model.safetensors');
    const name = 'model.layers.0.mlp.up_proj.weight';
    await poke(file, name, 17, value);
    await assert.rejects(loadLlama(dir, { dtype: 'f32' }), (e) => e instanceof SafetensorsError && refusal(file, name, 'element 17', String(value))(e));
  }
});

test('a base weight finite in f32 but beyond f16 is refused when read as f16, with --base-dtype f32 as the way out', async (t) => {
  if (!hasF16()) return t.skip('the adapter has no shader-f16');
  const dir = join(tmp(), 'model');
  cpSync(modelDir, dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  await poke(file, 'model.norm.weight', 3, 1e6);
  await assert.rejects(loadLlama(dir, { dtype: 'f16' }), refusal(file, 'model.norm.weight', 'element 3', '1000000', "beyond f16's range", '--base-dtype f32'));
  const model = await loadLlama(dir, { dtype: 'f32' });
  model.dispose();
});

test('loadAdapter refuses an adapter full of NaN, naming the tensor and the file', async () => {
  const model = await loadLlama(modelDir);
  applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: 1 });
  const dir = join(tmp(), 'adapter');
  await saveAdapter(model, dir, modelDir);
  const file = join(dir, 'adapter_model.safetensors');
  const name = 'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight';
  for (let i = 0; i < 4 * 32; i++) await poke(file, name, i, NaN);
  await assert.rejects(loadAdapter(model, dir), refusal(file, name, 'NaN', `${4 * 32} of ${4 * 32}`));
  model.dispose();
});

test('readCheckpoint refuses optimizer state holding infinity, naming the tensor and the file', async () => {
  const out = tmp();
  const state = { step: 1, totalSteps: 2, microBatchSize: 1, gradientAccumulation: 1, history: [], bestValLoss: null, bestStep: null, recipeKey: 'k' };
  const { dir } = await writeCheckpoint(out, 1, { state, optimizer: { state: [{ step: 1, buffers: { m: new Float32Array([1, 2, 3]), v: new Float32Array([4, 5, 6]) } }], paramGroups: [{ options: { lr: 1 }, params: [0] }] } }, async (d) => {
    const model = createRandomLlama(configFromPreset('tiny', SMALL_MODEL), { seed: 5 });
    applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj'] });
    await saveAdapter(model, d, 'base');
    model.dispose();
  });
  const file = join(dir, 'optimizer.safetensors');
  await readCheckpoint(dir);
  await poke(file, 't1', 2, -Infinity);
  await assert.rejects(readCheckpoint(dir), refusal(file, 't1', 'element 2', '-Infinity'));
});
