// Training and generation run the same attention kernels from their first step: with v2 pipelines created
// in the background (as on GPUs; forced here, since lavapipe's narrow subgroups create them in place),
// the trainer and generate have them created first, so no step runs v1, and where the device refuses
// them generation decodes the same tokens on v1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, profile } from '@huatuo/tensor';
import { getRuntime, setV2Creation, setV2Rewrite } from '@huatuo/tensor/internal';
import { generate, type LlamaModel } from '@huatuo/llama';
import { attachLora, loadBaseModel, prepareData, train } from '@huatuo/sft';
import { smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

let v2 = false;
let generating: LlamaModel | null = null;

before(async () => {
  const info = await initWebGPU();
  // Head dims 32 and 64 have v2 layouts on subgroups of 8 (lavapipe), 16 and 32 (4 sg D, up to 16 sg).
  v2 = info.features.has('subgroups') && [8, 16].includes(getRuntime().info.subgroupMinSize) && info.subgroupMinSize === info.subgroupMaxSize;
  setV2Creation('async');
});

after(() => {
  setV2Creation(null);
  generating?.dispose();
});

/** The demo model the generation tests share (head dim 64). */
async function generationModel(): Promise<LlamaModel> {
  if (generating === null) {
    const base = await loadBaseModel(null, undefined, { demoConfig: { hiddenSize: 128, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 } });
    generating = base.model;
  }
  return generating;
}

const PROMPT = [[1, 5, 9, 14, 3, 7, 22, 8]];

/** The fused attention kernels (forward, dq, dk dv; v1 or v2) a run dispatched, by label. */
function attentionKernels(labels: string[]): string[] {
  return [...new Set(labels.filter((l) => /^attention.* v[12]$/.test(l)))].sort();
}

test('generate runs v2 attention on the prompt and for the first decoded token from its first call', async (t) => {
  if (!v2) return t.skip('adapter has no subgroup size of 8 or 16');
  const model = await generationModel();
  assert.equal(model.config.headDim, 64);
  const { report } = await profile(() => generate(model, null, PROMPT, { maxNewTokens: 2 }));
  assert.deepEqual(attentionKernels(report.kernels.map((k) => k.label)), ['attention decode v2', 'attention v2']);
});

test('where the device refuses the v2 attention pipelines generate decodes the same tokens on v1', async (t) => {
  if (!v2) return t.skip('adapter has no subgroup size of 8 or 16');
  const model = await generationModel();
  const expected = await generate(model, null, PROMPT, { maxNewTokens: 5, eosTokenIds: [] });
  // A type error the WGSL compiler rejects, appended to each v2 module.
  setV2Rewrite({ name: 'ill-typed', rewrite: (wgsl) => `${wgsl}\nfn ill_typed() { let x: u32 = 1.5; }\n` });
  try {
    const { result, report } = await profile(() => generate(model, null, PROMPT, { maxNewTokens: 5, eosTokenIds: [] }));
    assert.deepEqual(attentionKernels(report.kernels.map((k) => k.label)), ['attention decode v1', 'attention v1']);
    assert.equal(expected[0]!.tokens.length, 5);
    assert.deepEqual(result.map((g) => g.tokens), expected.map((g) => g.tokens));
  } finally {
    setV2Rewrite(null);
  }
});

test('a training run runs v2 attention forward and backward from its first step', async (t) => {
  if (!v2) return t.skip('adapter has no subgroup size of 8 or 16');
  const dir = tmp();
  const config = smallConfig(writeRecords(dir, smallRecords(12)), dir, { maxSteps: 2, evalSteps: 2, saveSteps: 2 });
  const base = await loadBaseModel(null, undefined, { demoConfig: { hiddenSize: 64, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 } });
  try {
    const data = await prepareData(config, base);
    const model = attachLora(base, config);
    assert.equal(model.headDim, 32);
    const { report } = await profile(() => train({ config, model, train: data.train, val: data.val, microBatchSize: 2 }));
    assert.deepEqual(attentionKernels(report.kernels.map((k) => k.label)), ['attention backward dk dv v2', 'attention backward dq v2', 'attention v2']);
  } finally {
    base.model.dispose();
  }
});
