// Scaled RoPE (Hugging Face rope_scaling "linear", "llama3", "dynamic"): inverse frequencies and cos/sin
// against torch float32 values (test/fixtures/rope/scaling.json, scripts/fixtures/make-rope-scaling-fixture.py),
// rope and ropeCache on the GPU against the CPU reference, tables cached per scaling, and bad specs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  ValueError, noGrad, refRope, refRopeCache, refRopeInvFreq, refTensor, rope, ropeCache, ropeInvFreq, slice, tensor,
  type RopeScaling, type RopeSpec,
} from '@huatuo/tensor';
import { assertClose, gpu, scoped, seededValues } from './helpers.js';

interface FixtureCase {
  name: string;
  D: number;
  theta: number;
  rope_scaling: Record<string, number | string> | null;
  max_position_embeddings: number;
  seq_len: number | null;
  positions: number[];
  inv_freq: number[];
  cos: number[];
  sin: number[];
}

const fixture = JSON.parse(readFileSync(new URL('../fixtures/rope/scaling.json', import.meta.url), 'utf8')) as { cases: FixtureCase[] };

function specOf(c: FixtureCase): RopeSpec {
  const s = c.rope_scaling;
  if (s === null) return { theta: c.theta };
  const type = s['rope_type'] ?? s['type'];
  const factor = s['factor'] as number;
  let scaling: RopeScaling;
  if (type === 'linear') scaling = { type, factor };
  else if (type === 'llama3') {
    scaling = {
      type, factor, lowFreqFactor: s['low_freq_factor'] as number, highFreqFactor: s['high_freq_factor'] as number,
      originalMaxPositionEmbeddings: s['original_max_position_embeddings'] as number,
    };
  } else scaling = { type: 'dynamic', factor, maxPositionEmbeddings: c.max_position_embeddings, seqLen: c.seq_len ?? 0 };
  return { theta: c.theta, scaling };
}

/** |a - e| in units of e's float32 spacing. */
function ulps(a: number, e: number): number {
  return Math.abs(a - e) / (2 ** (Math.floor(Math.log2(Math.abs(e))) - 23));
}

// torch's float32 pow (SLEEF, within 1 ulp) is not always correctly rounded; where it rounds the other way,
// its reciprocal inv_freq is off by up to 2 ulps and the angles at large positions by up to position * ulp.
const POW_ROUNDING = new Set(['dynamic-llama2']);

test('scaled inverse frequencies equal torch float32 values for linear, llama3 and dynamic scaling', () => {
  for (const c of fixture.cases) {
    for (const [name, inv] of [['ropeInvFreq', ropeInvFreq(c.D, specOf(c))], ['refRopeInvFreq', refRopeInvFreq(c.D, specOf(c))]] as const) {
      assert.equal(inv.length, c.D / 2);
      inv.forEach((v, j) => {
        if (POW_ROUNDING.has(c.name)) assert.ok(ulps(v, c.inv_freq[j]!) <= 2, `${name} ${c.name} inv_freq[${j}]: ${v} vs torch ${c.inv_freq[j]}`);
        else assert.equal(v, c.inv_freq[j], `${name} ${c.name} inv_freq[${j}]: ${v} vs torch ${c.inv_freq[j]}`);
      });
    }
  }
});

test('rope with each scaling rotates by the torch cos and sin of its scaled angles', async () => {
  await gpu();
  for (const c of fixture.cases) {
    const h = c.D / 2;
    const T = c.positions.length;
    // Unit pairs (x[j], x[j + h]) = (1, 0) rotate to (cos, sin).
    const x = new Float32Array(T * c.D);
    for (let t = 0; t < T; t++) x.fill(1, t * c.D, t * c.D + h);
    await scoped(async () => {
      const y = await rope(tensor(x, [T, c.D]), tensor(Int32Array.from(c.positions)), specOf(c)).toArray();
      const cos = new Float32Array(T * h);
      const sin = new Float32Array(T * h);
      for (let t = 0; t < T; t++) {
        cos.set(y.subarray(t * c.D, t * c.D + h), t * h);
        sin.set(y.subarray(t * c.D + h, (t + 1) * c.D), t * h);
      }
      const atol = POW_ROUNDING.has(c.name) ? 4e-6 : 1.2e-7;
      assertClose(cos, c.cos, { atol, rtol: 0 }, `rope ${c.name} cos`);
      assertClose(sin, c.sin, { atol, rtol: 0 }, `rope ${c.name} sin`);
    });
  }
});

const SCALINGS: RopeSpec[] = [
  { theta: 10000, scaling: { type: 'linear', factor: 4 } },
  { theta: 500000, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } },
  { theta: 10000, scaling: { type: 'dynamic', factor: 2, maxPositionEmbeddings: 64, seqLen: 300 } },
];

test('rope and ropeCache with scaling match the reference, and each spec gets its own cached table', async () => {
  await gpu();
  const [B, T, H, Hkv, D] = [2, 3, 2, 1, 16];
  const pos = Int32Array.from([0, 7, 299]);
  for (const spec of SCALINGS) {
    await scoped(async () => {
      const what = JSON.stringify(spec);
      const xv = seededValues(B * H * T * D, 5, 2);
      const y = await rope(tensor(xv, [B, H, T, D]), tensor(pos), spec).toArray();
      assertClose(y, refRope(refTensor(xv, [B, H, T, D]), refTensor(pos, [T]), spec).data, { atol: 1e-5, rtol: 1e-4 }, `rope ${what}`);
      const plain = await rope(tensor(xv, [B, H, T, D]), tensor(pos), spec.theta).toArray();
      assert.ok(plain.some((v, i) => Math.abs(v - y[i]!) > 1e-3), `rope ${what}: the scaled rotation should differ from the unscaled one`);
      const proj = seededValues(B * T * (H + 2 * Hkv) * D, 6, 2);
      const [nq, nk] = [H * D, Hkv * D];
      const all = tensor(proj, [B, T, nq + 2 * nk]);
      const keys = tensor(new Float32Array(B * Hkv * 4 * D), [B, Hkv, 4, D]);
      const values = tensor(new Float32Array(B * Hkv * 4 * D), [B, Hkv, 4, D]);
      const qo = noGrad(() => ropeCache(slice(all, 2, 0, nq), slice(all, 2, nq, nq + nk), slice(all, 2, nq + nk, nq + 2 * nk), tensor(pos), spec, keys, values, 1));
      const cols = (from: number, n: number) => {
        const out = new Float32Array(B * T * n);
        for (let m = 0; m < B * T; m++) out.set(proj.subarray(m * (nq + 2 * nk) + from, m * (nq + 2 * nk) + from + n), m * n);
        return refTensor(out, [B, T, n]);
      };
      const zeros = refTensor(new Float32Array(B * Hkv * 4 * D), [B, Hkv, 4, D]);
      const ref = refRopeCache(cols(0, nq), cols(nq, nk), cols(nq + nk, nk), refTensor(pos, [T]), spec, zeros, zeros, 1);
      assertClose(await qo.toArray(), ref.q.data, { atol: 1e-5, rtol: 1e-4 }, `ropeCache ${what}: q`);
      assertClose(await keys.toArray(), ref.keys.data, { atol: 1e-5, rtol: 1e-4 }, `ropeCache ${what}: keys`);
    });
  }
});

test('device-resident positions past the table rotate by the scaled frequencies', async () => {
  await gpu();
  const D = 8;
  const pos = Int32Array.from([3, 2500, 4000, 1]);
  for (const spec of SCALINGS.slice(0, 2)) {
    await scoped(async () => {
      const xv = seededValues(3 * D, 9, 2);
      // A slice of a longer tensor has no host copy: the table covers 2048 rows, the rest is computed on the GPU.
      const onDevice = slice(tensor(pos), 0, 0, 3);
      const y = await rope(tensor(xv, [3, D]), onDevice, spec).toArray();
      const expected = refRope(refTensor(xv, [3, D]), refTensor(pos.slice(0, 3), [3]), spec).data;
      assertClose(y, expected, { atol: 2e-3, rtol: 0 }, `rope ${JSON.stringify(spec)} past the table`);
    });
  }
});

test('bad scaling parameters raise ValueError naming the field', async () => {
  await gpu();
  const x = tensor(new Float32Array(8), [1, 8]);
  const p = tensor(new Int32Array([0]));
  const bad: [RopeSpec, RegExp][] = [
    [{ theta: 10000, scaling: { type: 'linear', factor: 0.5 } }, /factor must be a number >= 1, got 0.5/],
    [{ theta: 10000, scaling: { type: 'linear', factor: Number.NaN } }, /factor/],
    [{ theta: 10000, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 4, highFreqFactor: 1, originalMaxPositionEmbeddings: 8192 } }, /highFreqFactor > lowFreqFactor/],
    [{ theta: 10000, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 0.5 } }, /originalMaxPositionEmbeddings/],
    [{ theta: 10000, scaling: { type: 'dynamic', factor: 2, maxPositionEmbeddings: 64, seqLen: -1 } }, /seqLen/],
    [{ theta: 10000, scaling: { type: 'yarn', factor: 2, originalMaxPositionEmbeddings: 0 } }, /originalMaxPositionEmbeddings must be a positive integer/],
    [{ theta: 10000, scaling: { type: 'yarn', factor: 2, originalMaxPositionEmbeddings: 64, attentionFactor: -1 } }, /the attention factor must be a finite number > 0, got -1/],
    [{ theta: 10000, scaling: { type: 'yarn', factor: 2, originalMaxPositionEmbeddings: 64, betaFast: -1 } }, /betaFast must be a number >= 0/],
    [{ theta: 10000, scaling: { type: 'longrope', factor: 2 } as unknown as RopeScaling }, /type must be "linear", "llama3", "dynamic" or "yarn", got "longrope"/],
    [{ theta: -1 }, /theta must be a finite number > 0/],
  ];
  for (const [spec, message] of bad) {
    assert.throws(() => rope(x, p, spec), (e: unknown) => e instanceof ValueError && /^rope: /.test(e.message) && message.test(e.message), JSON.stringify(spec));
    assert.throws(() => ropeInvFreq(8, spec), ValueError);
  }
});
