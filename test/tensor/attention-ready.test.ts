// readyAttention: with v2 pipelines created in the background (as on GPUs; forced here, since lavapipe's
// narrow subgroups create them in place), the first call runs v1 without it and v2 after it, forward and
// backward; a pipeline the device refuses settles it and leaves v1 for good; in place it starts nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attention, DTypeError, profile, readyAttention, runtimeStats, tensor, ValueError, type FloatDType, type Tensor } from '@huatuo/tensor';
import { getRuntime, setAttentionKernel, setV2Creation, setV2Rewrite } from '@huatuo/tensor/internal';
import { assertClose, gpu, inBackground, seededValues } from './helpers.js';

const KERNEL_LABELS = ['attention', 'attention backward dq', 'attention backward dk dv'];
const v1Labels = KERNEL_LABELS.map((l) => `${l} v1`).sort();
const v2Labels = KERNEL_LABELS.map((l) => `${l} v2`).sort();

/** The head dims v2 runs at on this adapter (4 and 8 vec4 columns a subgroup), none without one fixed subgroup size. */
async function v2Dims(): Promise<number[]> {
  await gpu();
  const info = getRuntime().info;
  const sg = info.subgroupMinSize;
  if (!info.features.has('subgroups') || sg === 0 || sg !== info.subgroupMaxSize || sg > 32) return [];
  return [4 * sg, 8 * sg];
}

/** One forward and backward at head dim D: its output and dq, and the labels of the attention kernels it ran. */
async function step(D: number): Promise<{ out: Float32Array; dq: Float32Array; ran: string[] }> {
  const [B, Hq, Hkv, T] = [1, 2, 1, 19];
  const q = tensor(seededValues(B * Hq * T * D, 1), [B, Hq, T, D], { requiresGrad: true });
  const k = tensor(seededValues(B * Hkv * T * D, 2), [B, Hkv, T, D], { requiresGrad: true });
  const v = tensor(seededValues(B * Hkv * T * D, 3), [B, Hkv, T, D], { requiresGrad: true });
  const { result: out, report } = await profile(() => {
    const o = attention(q, k, v);
    o.backward(tensor(seededValues(B * Hq * T * D, 4), [B, Hq, T, D]));
    return o;
  });
  const res = { out: (await out.toArray()) as Float32Array, dq: (await q.grad!.toArray()) as Float32Array };
  for (const t of [q, k, v, out] as Tensor[]) t.dispose();
  const ran = report.kernels.map((r) => r.label).filter((l) => / v[12]$/.test(l));
  return { ...res, ran: ran.sort() };
}

test('without readyAttention the first call runs v1 while v2 is created in the background, and v2 once it exists', async (t) => {
  const dims = await v2Dims();
  if (dims.length === 0) return t.skip('adapter has no single subgroup size v2 is written for');
  const D = dims[0]!;
  await inBackground(async () => {
    const first = await step(D);
    assert.deepEqual(first.ran, v1Labels, 'the first call runs v1 forward and backward');
    const ready = await readyAttention({ headDim: D, backward: true });
    assert.deepEqual(ready.map((r) => r.runs), ['v2', 'v2', 'v2'], JSON.stringify(ready));
    const later = await step(D);
    assert.deepEqual(later.ran, v2Labels, 'once created, v2 runs forward and backward');
    assertClose(later.out, first.out, { atol: 2e-5, rtol: 2e-4 }, 'v2 output vs v1');
    assertClose(later.dq, first.dq, { atol: 1e-4, rtol: 1e-3 }, 'v2 dq vs v1');
  });
});

test('after readyAttention the very first call runs v2, forward and backward', async (t) => {
  const dims = await v2Dims();
  if (dims.length === 0) return t.skip('adapter has no single subgroup size v2 is written for');
  const D = dims[1]!;
  await inBackground(async () => {
    const ready = await readyAttention({ headDim: [D], dtypes: ['f32'], backward: true });
    assert.deepEqual(
      ready.map((r) => [r.kernel, r.headDim, r.dtype, r.runs]),
      ['attention_forward.v2', 'attention_backward_dq.v2', 'attention_backward_dkv.v2'].map((k) => [k, D, 'f32', 'v2']),
    );
    assert.deepEqual((await step(D)).ran, v2Labels);
    const pipelines = runtimeStats().pipelines;
    assert.deepEqual(await readyAttention({ headDim: D, backward: true }), ready, 'a second call gives the same answer');
    assert.equal(runtimeStats().pipelines, pipelines, 'and creates nothing');
  });
});

test('a v2 pipeline the device refuses settles readyAttention with the reason, and v1 runs for good', async (t) => {
  const dims = await v2Dims();
  if (dims.length === 0) return t.skip('adapter has no single subgroup size v2 is written for');
  const D = dims[0]!;
  // A type error the WGSL compiler rejects, appended to each v2 module.
  setV2Rewrite({ name: 'ill-typed', rewrite: (wgsl) => `${wgsl}\nfn ill_typed() { let x: u32 = 1.5; }\n` });
  try {
    await inBackground(async () => {
      const ready = await readyAttention({ headDim: D, backward: true });
      assert.equal(ready.length, 3);
      for (const r of ready) {
        assert.equal(r.runs, 'v1', r.kernel);
        assert.match(r.reason ?? '', /shader module failed/, r.kernel);
      }
      assert.deepEqual((await step(D)).ran, v1Labels, 'the first call runs v1');
      assert.deepEqual((await step(D)).ran, v1Labels, 'and so does the next: a refusal is not retried');
      assert.deepEqual(await readyAttention({ headDim: D, backward: true }), ready);
    });
  } finally {
    setV2Rewrite(null);
  }
});

test('where v2 is created in place readyAttention starts nothing and says which kernels run', async (t) => {
  const dims = await v2Dims();
  await gpu();
  const D = dims[0] ?? 64;
  const pipelines = runtimeStats().pipelines;
  const dtypes: FloatDType[] = getRuntime().info.features.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
  const ready = await readyAttention({ headDim: [D, 36], dtypes });
  assert.equal(runtimeStats().pipelines, pipelines, 'no pipeline is created before first use');
  const runs = (d: number) => ready.filter((r) => r.headDim === d).map((r) => r.runs);
  if (dims.length > 0) {
    assert.deepEqual(runs(D), dtypes.map(() => 'v2'));
    if (getRuntime().info.subgroupMinSize < 32) assert.deepEqual((await step(D)).ran, v2Labels, 'created in place, v2 runs at once');
  }
  assert.deepEqual(runs(36), dtypes.map(() => 'v1'));
  assert.match(ready.find((r) => r.headDim === 36)!.reason!, /no v2 layout for head dim 36/);
  setAttentionKernel('v1');
  try {
    const forced = await readyAttention({ headDim: D, backward: true });
    assert.ok(forced.every((r) => r.runs === 'v1' && /forced/.test(r.reason!)), JSON.stringify(forced));
  } finally {
    setAttentionKernel(null);
  }
});

test('with composed attention forced readyAttention creates no fused pipeline and says composed runs', async () => {
  await gpu();
  setAttentionKernel('composed');
  setV2Creation('async');
  try {
    const pipelines = runtimeStats().pipelines;
    const ready = await readyAttention({ headDim: 40, backward: true, decode: true });
    assert.equal(runtimeStats().pipelines, pipelines, 'no fused pipeline is created');
    assert.equal(ready.length, 4);
    assert.ok(ready.every((r) => r.runs === 'composed' && /composed attention is forced/.test(r.reason!)), JSON.stringify(ready));
  } finally {
    setAttentionKernel(null);
    setV2Creation(null);
  }
});

test('readyAttention refuses a head dim attention does not take and a dtype that is not a float, naming both', async () => {
  await gpu();
  await assert.rejects(readyAttention({ headDim: 0 }), (e) => e instanceof ValueError && /readyAttention: headDim 0; attention takes head dims 1 to 256/.test(e.message));
  await assert.rejects(readyAttention({ headDim: [64, 512] }), (e) => e instanceof ValueError && /headDim 512/.test(e.message));
  await assert.rejects(readyAttention({ headDim: 64, dtypes: ['i32' as FloatDType] }), (e) => e instanceof DTypeError && /dtype i32; attention runs in f32 or f16/.test(e.message));
});
