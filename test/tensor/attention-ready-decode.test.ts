// readyAttention with decode: the decode kernel (T == 1) is created like the other v2 kernels. With its
// pipeline created in the background (as on GPUs; forced here), the first decode step runs v1 without
// readiness and v2 after it; a pipeline the device refuses settles readiness and leaves v1 for good.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attention, profile, readyAttention, runtimeStats, tensor, type Tensor } from '@huatuo/tensor';
import { getRuntime, setV2Rewrite } from '@huatuo/tensor/internal';
import { assertClose, gpu, inBackground, seededValues } from './helpers.js';

/** Whether the decode kernel has a v2 here: subgroups of one fixed size it is compiled for. */
async function decodeV2(): Promise<boolean> {
  await gpu();
  const info = getRuntime().info;
  const sg = info.subgroupMinSize;
  return info.features.has('subgroups') && sg === info.subgroupMaxSize && [4, 8, 16, 32, 64, 128].includes(sg);
}

/** One decode step (one query per head against 13 keys) at head dim D: its output and the decode kernel it ran. */
async function decodeStep(D: number): Promise<{ out: Float32Array; ran: string[] }> {
  const [B, Hq, Hkv, S] = [1, 4, 2, 13];
  const q = tensor(seededValues(B * Hq * D, 1), [B, Hq, 1, D]);
  const k = tensor(seededValues(B * Hkv * S * D, 2), [B, Hkv, S, D]);
  const v = tensor(seededValues(B * Hkv * S * D, 3), [B, Hkv, S, D]);
  const { result, report } = await profile(() => attention(q, k, v));
  const out = (await result.toArray()) as Float32Array;
  for (const t of [q, k, v, result] as Tensor[]) t.dispose();
  return { out, ran: report.kernels.map((r) => r.label).filter((l) => /^attention decode v[12]$/.test(l)) };
}

test('without readyAttention the first decode step runs the v1 decode kernel, and v2 once it exists', async (t) => {
  if (!(await decodeV2())) return t.skip('adapter has no single subgroup size');
  await inBackground(async () => {
    const first = await decodeStep(32);
    assert.deepEqual(first.ran, ['attention decode v1']);
    const ready = await readyAttention({ headDim: 32, decode: true });
    assert.deepEqual(ready.map((r) => r.kernel), ['attention_forward.v2', 'attention_decode_partial.v2']);
    assert.equal(ready[1]!.runs, 'v2');
    const later = await decodeStep(32);
    assert.deepEqual(later.ran, ['attention decode v2']);
    assertClose(later.out, first.out, { atol: 2e-6, rtol: 2e-5 }, 'v2 decode vs v1');
  });
});

test('after readyAttention with decode the very first decode step runs v2', async (t) => {
  if (!(await decodeV2())) return t.skip('adapter has no single subgroup size');
  await inBackground(async () => {
    const ready = await readyAttention({ headDim: 48, decode: true });
    assert.deepEqual(ready.at(-1), { kernel: 'attention_decode_partial.v2', headDim: 48, dtype: 'f32', runs: 'v2' });
    assert.deepEqual((await decodeStep(48)).ran, ['attention decode v2']);
    const pipelines = runtimeStats().pipelines;
    assert.deepEqual(await readyAttention({ headDim: 48, decode: true }), ready, 'a second call gives the same answer');
    assert.equal(runtimeStats().pipelines, pipelines, 'and creates nothing');
  });
});

test('a decode pipeline the device refuses settles readyAttention with the reason, and decoding runs v1 for good', async (t) => {
  if (!(await decodeV2())) return t.skip('adapter has no single subgroup size');
  const expected = await decodeStep(40);
  // A type error the WGSL compiler rejects, appended to each v2 module.
  setV2Rewrite({ name: 'ill-typed', rewrite: (wgsl) => `${wgsl}\nfn ill_typed() { let x: u32 = 1.5; }\n` });
  try {
    await inBackground(async () => {
      const [, decode] = await readyAttention({ headDim: 40, decode: true });
      assert.equal(decode?.kernel, 'attention_decode_partial.v2');
      assert.equal(decode?.runs, 'v1');
      assert.match(decode?.reason ?? '', /shader module failed/);
      for (const what of ['the first step', 'the next: a refusal is not retried']) {
        const step = await decodeStep(40);
        assert.deepEqual(step.ran, ['attention decode v1'], what);
        assertClose(step.out, expected.out, { atol: 2e-6, rtol: 2e-5 }, `${what} vs the decode without the rewrite`);
      }
    });
  } finally {
    setV2Rewrite(null);
  }
});

test('readyAttention readies the decode kernel only when asked, and says why v1 decodes where it must', async () => {
  await gpu();
  assert.ok((await readyAttention({ headDim: 32 })).every((r) => r.kernel !== 'attention_decode_partial.v2'));
  const [, decode] = await readyAttention({ headDim: 36, decode: true });
  if (await decodeV2()) assert.equal(decode?.runs, 'v2', 'the decode kernel takes any head dim');
  else assert.match(decode?.reason ?? '', /no single subgroup size/);
});
