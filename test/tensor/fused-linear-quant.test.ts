// The fused decode products over int8 and NF4 weights (matvec_fused_int8, matvec_fused_nf4) against the
// separate ops (rmsNorm, quantizedMatmul, then cat, add or swiglu, with PEFT's adapter ops) in f32 and f16,
// 1 and 2 rows, at K 72 (rows starting inside chunks, NF4 blocks straddling rows), with and without adapters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  add, cat, checkFusedLinear, decodeCandidates, fusedLinear, fusedLinearAdd, fusedLinearFits, fusedLinearSwiglu, hasF16, matmul, mul, noGrad, quantizedMatmul, quantizeHost, QuantizedWeight,
  reshape, rmsNorm, swiglu, tensor, transpose, type FloatDType, type FusedLora, type Tensor,
} from '@huatuo/tensor';
import { setFusedLinearRewrite } from '@huatuo/tensor/internal';
import { gpu, scoped, seededValues } from './helpers.js';

type Format = 'int8' | 'nf4';
type Kind = 'cat' | 'add' | 'swiglu';
/** A case: the epilogue, each weight's rows, its adapter's rank and scaling (null: none), the norm first. */
interface Case {
  kind: Kind;
  rows: number[];
  adapters: Array<[number, number] | null> | null;
  norm: boolean;
}

const K = 72;
const CASES: Case[] = [
  { kind: 'cat', rows: [24, 12, 12], adapters: null, norm: true },
  { kind: 'cat', rows: [24, 12, 12], adapters: [[8, 2], null, [3, 16 / Math.sqrt(3)]], norm: true },
  { kind: 'cat', rows: [36], adapters: null, norm: false },
  { kind: 'add', rows: [40], adapters: null, norm: false },
  { kind: 'add', rows: [40], adapters: [[3, -0.75]], norm: false },
  { kind: 'swiglu', rows: [28, 28], adapters: null, norm: true },
  { kind: 'swiglu', rows: [28, 28], adapters: [[4, 2], [7, 0.5]], norm: true },
];

const what = (c: Case, f: Format, dtype: FloatDType, M: number) => `${f} ${c.kind} ${dtype} M ${M} rows [${c.rows}] adapters ${JSON.stringify(c.adapters)} norm ${c.norm}`;

/** The fused product of case c and the separate ops it stands for, both [M, N]; the weights to dispose. */
function both(c: Case, f: Format, dtype: FloatDType, M: number, seed: number): [Tensor, Tensor, QuantizedWeight[]] {
  const make = (shape: number[], s: number, scale = 1) => tensor(seededValues(shape.reduce((p, d) => p * d, 1), s, scale), shape, { dtype });
  const x = make([M, K], seed);
  const g = make([K], seed + 1);
  const norm = c.norm ? { weight: g, eps: 1e-5 } : undefined;
  const ws = c.rows.map((n, i) => QuantizedWeight.upload(quantizeHost(seededValues(n * K, seed + 10 + i, 0.2), n, K, f)));
  const res = make([M, c.rows[0]!], seed + 2, 2);
  const h = norm === undefined ? x : rmsNorm(x, g, 1e-5);
  const lin = (t: Tensor, w: Tensor) => matmul(t, transpose(w));
  const As = (c.adapters ?? []).map((a, i) => (a === null ? null : make([a[0], K], seed + 20 + i, 0.2)));
  const Bs = (c.adapters ?? []).map((a, i) => (a === null ? null : make([c.rows[i]!, a[0]], seed + 30 + i)));
  // The separate ops: PEFT's base(h) + lora_B(lora_A(h)) * scaling, with h the (normed) input.
  const proj = (i: number) => {
    const a = c.adapters?.[i];
    const base = quantizedMatmul(h, ws[i]!);
    return a === null || a === undefined ? base : add(base, mul(lin(lin(h, As[i]!), Bs[i]!), a[1]));
  };
  let lora: FusedLora | undefined;
  if (c.adapters !== null) {
    const bs = Bs.filter((b) => b !== null);
    lora = {
      h: fusedLinear(x, As.filter((a) => a !== null), norm),
      b: bs.length === 1 ? bs[0]! : cat(bs.map((b) => reshape(b, [b.size])), 0),
      adapters: c.adapters.map((a) => a && { rank: a[0], scaling: a[1] }),
    };
  }
  assert.ok(fusedLinearFits(x, ws, norm), `${what(c, f, dtype, M)} fits`);
  if (c.kind === 'add') return [fusedLinearAdd(res, x, ws[0]!, lora), add(res, proj(0)), ws];
  if (c.kind === 'swiglu') return [fusedLinearSwiglu(x, ws[0]!, ws[1]!, norm, lora), swiglu(proj(0), proj(1)), ws];
  return [fusedLinear(x, ws, norm, lora), cat(c.rows.map((_, i) => proj(i)), -1), ws];
}

// The on-device check's bound for the dense fused products against their separate ops.
const TOL = { f32: [1e-4, 1e-4], f16: [2e-2, 2e-2] } as const;

test('the fused products over int8 and NF4 weights match quantizedMatmul and the separate ops', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  // Two pipelines a format, f32 with 1 row and f16 with 2 (shader compiles are slow on CPU drivers).
  const runs: Array<[FloatDType, number]> = hasF16() ? [['f32', 1], ['f16', 2]] : [['f32', 1], ['f32', 2]];
  for (const f of ['int8', 'nf4'] as const) {
    for (const [dtype, M] of runs) {
      for (const [i, c] of CASES.entries()) {
        await scoped(async () => {
          const [fused, separate, ws] = noGrad(() => both(c, f, dtype, M, 100 * i + 7));
          try {
            const [got, want] = [(await fused.toArray()) as Float32Array, (await separate.toArray()) as Float32Array];
            assert.equal(got.length, want.length);
            const [atol, rtol] = TOL[dtype];
            for (let j = 0; j < want.length; j++) {
              if (!(Math.abs(got[j]! - want[j]!) <= atol + rtol * Math.abs(want[j]!))) assert.fail(`${what(c, f, dtype, M)}: element ${j} is ${got[j]}, the separate ops give ${want[j]}`);
            }
          } finally {
            for (const w of ws) w.dispose();
          }
        });
      }
    }
  }
});

test('quantized weights of two formats, or of the wrong width, do not fit one fused product', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  await scoped(async () => {
    const x = tensor(seededValues(K, 1), [1, K]);
    const a = QuantizedWeight.upload(quantizeHost(seededValues(8 * K, 2), 8, K, 'int8'));
    const b = QuantizedWeight.upload(quantizeHost(seededValues(8 * K, 3), 8, K, 'nf4'));
    const c = QuantizedWeight.upload(quantizeHost(seededValues(8 * 64, 4), 8, 64, 'nf4'));
    try {
      assert.equal(fusedLinearFits(x, [a, b]), false);
      assert.equal(fusedLinearFits(x, [b, c]), false);
      noGrad(() => assert.throws(() => fusedLinear(x, [b, c]), /a quantized weight is \[8, 64\]; weights are \[N, K\]/));
    } finally {
      for (const w of [a, b, c]) w.dispose();
    }
  });
});

test('the on-device check refuses a quantized fused kernel that misreads its weights', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  const needle = 'dot(x_vec(m, k4), v)';
  // Only the quantized kernels read x through x_vec; the dense one passes unchanged.
  setFusedLinearRewrite({ name: 'dequant-off', rewrite: (wgsl) => wgsl.replaceAll(needle, `${needle} * 1.001`) });
  try {
    const outcome = await checkFusedLinear();
    assert.equal(outcome.ok, false);
    assert.match(outcome.ok ? '' : outcome.reason, /^f32, 1 row, int8 q\/k\/v with the norm and adapters on q and v: element \d+ is/);
  } finally {
    setFusedLinearRewrite(null);
  }
});
