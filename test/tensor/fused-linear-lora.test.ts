// LoRA adapters in the fused decode products' epilogues (PEFT at inference: base(x) + B(A(x)) * scaling)
// against the separate ops (rmsNorm, matmul, mul, add, then cat, add or swiglu) in f32 and f16, 1 and 2
// rows, adapters on various subsets with different ranks and scalings; and the check refusing a wrong one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  add, cat, checkFusedLinear, decodeCandidates, fusedLinear, fusedLinearAdd, fusedLinearSwiglu, fusedLoraAdd, hasF16, matmul, mul, noGrad, reshape, rmsNorm,
  swiglu, tensor, transpose, type FloatDType, type FusedLora, type Tensor,
} from '@huatuo/tensor';
import { setFusedLinearRewrite } from '@huatuo/tensor/internal';
import { gpu, scoped, seededValues } from './helpers.js';

type Kind = 'cat' | 'add' | 'swiglu' | 'update';
/** A case: the epilogue, each weight's rows, its adapter's rank and scaling (null: none), the norm first. */
interface Case {
  kind: Kind;
  rows: number[];
  adapters: Array<[number, number] | null>;
  norm: boolean;
}

const K = 72; // 9 chunks of f16, 18 of f32: off the kernel's pass
const CASES: Case[] = [
  { kind: 'cat', rows: [24, 12, 12], adapters: [[8, 2], null, [3, 16 / Math.sqrt(3)]], norm: true }, // HuaTuo's q/v; rsLoRA on v
  { kind: 'cat', rows: [24, 12, 12], adapters: [null, [5, -0.5], null], norm: false },
  { kind: 'cat', rows: [9, 17, 4], adapters: [[1, 1.5], [8, 2], [6, 0.3]], norm: true },
  { kind: 'cat', rows: [33], adapters: [[7, 4]], norm: false },
  { kind: 'add', rows: [40], adapters: [[3, 4]], norm: false },
  { kind: 'swiglu', rows: [28, 28], adapters: [[4, 2], null], norm: true },
  { kind: 'swiglu', rows: [28, 28], adapters: [[2, 0.25], [9, 16 / 3]], norm: false },
  { kind: 'update', rows: [40], adapters: [[6, 2.5]], norm: false },
];

const what = (c: Case, dtype: FloatDType, M: number) =>
  `${c.kind} ${dtype} M ${M} rows [${c.rows}] adapters ${JSON.stringify(c.adapters.map((a) => a && { r: a[0], s: +a[1].toFixed(3) }))} norm ${c.norm}`;

/** The fused product of case c and the separate ops it stands for, both [M, N]. */
function both(c: Case, dtype: FloatDType, M: number, seed: number): [Tensor, Tensor] {
  const make = (shape: number[], s: number, scale = 1) => tensor(seededValues(shape.reduce((p, d) => p * d, 1), s, scale), shape, { dtype });
  const x = make([M, K], seed);
  const g = make([K], seed + 1);
  const norm = c.norm ? { weight: g, eps: 1e-5 } : undefined;
  const ws = c.rows.map((n, i) => make([n, K], seed + 10 + i, 0.2));
  const As = c.adapters.map((a, i) => (a === null ? null : make([a[0], K], seed + 20 + i, 0.2)));
  const Bs = c.adapters.map((a, i) => (a === null ? null : make([c.rows[i]!, a[0]], seed + 30 + i)));
  const res = make([M, c.rows[0]!], seed + 2, 2);
  const h = norm === undefined ? x : rmsNorm(x, g, 1e-5);
  const lin = (t: Tensor, w: Tensor) => matmul(t, transpose(w));
  // The separate ops: PEFT's base(h) + lora_B(lora_A(h)) * scaling, with h the (normed) input.
  const proj = (i: number) => {
    const a = c.adapters[i];
    return a === null || a === undefined ? lin(h, ws[i]!) : add(lin(h, ws[i]!), mul(lin(lin(h, As[i]!), Bs[i]!), a[1]));
  };
  if (c.kind === 'update') {
    const y = lin(x, ws[0]!);
    return [fusedLoraAdd(y, lin(x, As[0]!), Bs[0]!, c.adapters[0]![1]), proj(0)];
  }
  const adapted = As.filter((a) => a !== null);
  const bs = Bs.filter((b) => b !== null);
  const lora: FusedLora = {
    h: fusedLinear(x, adapted, norm),
    b: bs.length === 1 ? bs[0]! : cat(bs.map((b) => reshape(b, [b.size])), 0),
    adapters: c.adapters.map((a) => a && { rank: a[0], scaling: a[1] }),
  };
  if (c.kind === 'add') return [fusedLinearAdd(res, x, ws[0]!, lora), add(res, proj(0))];
  if (c.kind === 'swiglu') return [fusedLinearSwiglu(x, ws[0]!, ws[1]!, norm, lora), swiglu(proj(0), proj(1))];
  return [fusedLinear(x, ws, norm, lora), cat(c.rows.map((_, i) => proj(i)), -1)];
}

/** The unit in the last place of `dtype` at magnitude v (f32: 23 fraction bits, f16: 10). */
const ulp = (v: number, dtype: FloatDType) => 2 ** (Math.floor(Math.log2(v)) - (dtype === 'f32' ? 23 : 10));

// Measured on lavapipe: at most 5 f32 ulps and 2 f16 ulps of the output's largest entry. The update's
// sums run in another order than matmul's, and in f16 h = x A^T may round to a neighbouring value; the
// outputs cancel (base and update of similar size), so ulps are counted at the output's scale.
const BOUND_ULPS = { f32: 8, f16: 2 } as const;

test('adapters in the fused products match the separate ops: f32 to float rounding, f16 within 2 ulps of f16', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  for (const dtype of hasF16() ? (['f32', 'f16'] as const) : (['f32'] as const)) {
    for (const M of [1, 2]) {
      for (const [i, c] of CASES.entries()) {
        await scoped(async () => {
          const [fused, separate] = noGrad(() => both(c, dtype, M, 100 * i + 7));
          const [got, want] = [(await fused.toArray()) as Float32Array, (await separate.toArray()) as Float32Array];
          assert.equal(got.length, want.length);
          const unit = ulp(want.reduce((m, v) => Math.max(m, Math.abs(v)), 0), dtype);
          for (let j = 0; j < want.length; j++) {
            const ulps = Math.abs(got[j]! - want[j]!) / unit;
            if (!(ulps <= BOUND_ULPS[dtype])) assert.fail(`${what(c, dtype, M)}: element ${j} is ${got[j]}, the separate ops give ${want[j]} (${ulps} ulps of the output's scale)`);
          }
        });
      }
    }
  }
});

test('adapters must match their weights: one entry a weight, h of the summed ranks, b of their B matrices', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  await scoped(async () => {
    const x = tensor(seededValues(2 * K, 1), [2, K]);
    const w = tensor(seededValues(8 * K, 2), [8, K]);
    const h = tensor(seededValues(2 * 4, 3), [2, 4]);
    const b = tensor(seededValues(8 * 4, 4), [8, 4]);
    noGrad(() => {
      assert.throws(() => fusedLinear(x, [w], undefined, { h, b, adapters: [] }), /1 weights; give one per weight/);
      assert.throws(() => fusedLinear(x, [w], undefined, { h, b, adapters: [{ rank: 3, scaling: 2 }] }), /h is \[2, 4\]; it must be \[\.\.\., 3\]/);
      assert.throws(() => fusedLinear(x, [w], undefined, { h, b: reshape(b, [32]), adapters: [{ rank: 4, scaling: Number.NaN }] }), /scaling NaN/);
      assert.throws(() => fusedLinearAdd(tensor(seededValues(16, 5), [2, 8]), x, w, { h, b: tensor(seededValues(8, 6), [8]), adapters: [{ rank: 4, scaling: 2 }] }), /b is \[8\].*32 elements/);
    });
  });
});

test("the on-device check refuses an adapter epilogue that scales the update wrongly, and passes the kernel as written", async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  const needle = 'round_to_t(round_to_t(u) * s)';
  setFusedLinearRewrite({
    name: 'scale-off',
    rewrite: (wgsl) => {
      assert.ok(wgsl.includes(needle), 'the rewrite finds the adapter epilogue');
      return wgsl.replace(needle, 'round_to_t(round_to_t(u) * s * 1.0625)');
    },
  });
  try {
    const outcome = await checkFusedLinear();
    assert.equal(outcome.ok, false);
    // The products without adapters pass; the first case with one is refused, naming it.
    assert.match(outcome.ok ? '' : outcome.reason, /^f32, 1 row, q\/k\/v with the norm and adapters on q and v: element \d+ is/);
  } finally {
    setFusedLinearRewrite(null);
  }
  assert.deepEqual(await checkFusedLinear(), { ok: true });
});
