// Training and generation run the same attention kernels from their first step: with v2 pipelines created
// in the background (as on GPUs; forced here, since lavapipe's narrow subgroups create them in place),
// the trainer and generate have them created first, so no step runs v1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, profile } from '@huatuo/tensor';
import { getRuntime, setV2Creation } from '@huatuo/tensor/internal';
import { generate } from '@huatuo/llama';
import { attachLora, loadBaseModel, prepareData, train } from '@huatuo/sft';
import { smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

let v2 = false;

before(async () => {
  const info = await initWebGPU();
  // Head dims 32 and 64 have v2 layouts on subgroups of 8 (lavapipe), 16 and 32 (4 sg D, up to 16 sg).
  v2 = info.features.has('subgroups') && [8, 16].includes(getRuntime().info.subgroupMinSize) && info.subgroupMinSize === info.subgroupMaxSize;
  setV2Creation('async');
});

after(() => setV2Creation(null));

/** The fused attention kernels (forward, dq, dk dv; v1 or v2) a run dispatched, by label. */
function attentionKernels(labels: string[]): string[] {
  return [...new Set(labels.filter((l) => /^attention.* v[12]$/.test(l)))].sort();
}

test('generate runs v2 attention on the prompt from its first call', async (t) => {
  if (!v2) return t.skip('adapter has no subgroup size of 8 or 16');
  const base = await loadBaseModel(null, undefined, { demoConfig: { hiddenSize: 128, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 } });
  try {
    assert.equal(base.model.config.headDim, 64);
    const { report } = await profile(() => generate(base.model, null, [[1, 5, 9, 14, 3, 7, 22, 8]], { maxNewTokens: 2 }));
    assert.deepEqual(attentionKernels(report.kernels.map((k) => k.label)), ['attention v2']);
  } finally {
    base.model.dispose();
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
