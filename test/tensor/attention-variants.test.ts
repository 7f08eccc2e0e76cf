// attention kernel variants: v2 (subgroup sharing), v1 (the portable fallback) and composed (matmuls and
// a softmax) each forced in turn and checked against the float64 reference (GQA, causal offset, padding
// masks, empty rows, edges that are not multiples of the tiles), by finite differences, in f16, and the
// fused ones for O(T) memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  attention,
  hasF16,
  mul,
  refAttention,
  refAttentionBackward,
  refTensor,
  sum,
  tensor,
  type Tensor,
} from '@huatuo/tensor';
import { getRuntime, attentionKernelFor, setAttentionKernel, type AttentionKernel, setV2KeepRows, v2Layout } from '@huatuo/tensor/internal';
import { measureAttentionMemory } from './attention-memory.js';
import { attentionInputs, attentionRefs, paddingMask, qkvShapes, type AttentionInputs, type AttentionShape } from './attention-inputs.js';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

const TOL = { atol: 2e-5, rtol: 2e-4 };
const GRAD_TOL = { atol: 1e-4, rtol: 1e-3 };

interface Case extends AttentionShape {
  causal: boolean;
  /** Per batch row: [left padding, right padding] of the key mask, or null for no mask. */
  padding: [number, number][] | null;
}

const describe = (c: Case) => JSON.stringify(c);

/**
 * The head dim v2 is tested with here: 4 x subgroup size (one vec4 column per lane; attention.test.ts
 * covers D = 64 through the default path); none without subgroups. One layout keeps compiles few.
 */
function v2Dims(): number[] {
  const info = getRuntime().info;
  const sg = info.subgroupMinSize;
  if (!info.features.has('subgroups') || sg === 0 || sg !== info.subgroupMaxSize) return [];
  return [4 * sg].filter((D) => D <= 128);
}

/** Runs `body` with `kernel` forced, checking that it is the one that runs for every head dim in `dims`. */
async function withKernel(kernel: AttentionKernel, dims: number[], body: () => Promise<void>): Promise<void> {
  setAttentionKernel(kernel);
  try {
    for (const D of dims) assert.equal(attentionKernelFor(D), kernel, `forced ${kernel} must run for D=${D}`);
    await body();
  } finally {
    setAttentionKernel(null);
  }
}

const inputs = (c: Case) => attentionInputs(c, paddingMask(c));

/** Forward output and gradients of sum(out * g) for q, k and v. */
async function run(c: Case, x: AttentionInputs, g: Float32Array, dtype: 'f32' | 'f16' = 'f32') {
  const d = qkvShapes(c);
  const q = tensor(x.q, d.q, { dtype, requiresGrad: true });
  const k = tensor(x.k, d.k, { dtype, requiresGrad: true });
  const v = tensor(x.v, d.v, { dtype, requiresGrad: true });
  const mask = x.mask ? tensor(Uint32Array.from(x.mask), [c.B, c.S]) : null;
  const out = attention(q, k, v, { causal: c.causal, keyPaddingMask: mask });
  out.backward(tensor(g, d.q, { dtype }));
  const res = {
    out: (await out.toArray()) as Float32Array,
    dq: (await q.grad!.toArray()) as Float32Array,
    dk: (await k.grad!.toArray()) as Float32Array,
    dv: (await v.grad!.toArray()) as Float32Array,
  };
  for (const t of [q, k, v, mask, out]) t?.dispose();
  return res;
}

async function checkCase(c: Case, what: string): Promise<void> {
  const x = inputs(c);
  const r = attentionRefs(c, x);
  const g = seededValues(c.B * c.Hq * c.T * c.D, c.seed + 3);
  const got = await run(c, x, g);
  const opts = { causal: c.causal, keyPaddingMask: r.mask };
  const want = refAttentionBackward(r.q, r.k, r.v, refTensor(g, qkvShapes(c).q), opts);
  assertClose(got.out, refAttention(r.q, r.k, r.v, opts).data, TOL, `${what} forward ${describe(c)}`);
  assertClose(got.dq, want.dq.data, GRAD_TOL, `${what} dq ${describe(c)}`);
  assertClose(got.dk, want.dk.data, GRAD_TOL, `${what} dk ${describe(c)}`);
  assertClose(got.dv, want.dv.data, GRAD_TOL, `${what} dv ${describe(c)}`);
}

/** Random shapes for head dims `dims`: T and S around the v2 tiles (16 rows, 32 keys at subgroup 8). */
function caseArb(dims: number[]): fc.Arbitrary<Case> {
  const sizes = [2, 15, 16, 33, 47];
  return fc
    .record({
      B: fc.constantFrom(1, 2),
      heads: fc.constantFrom([1, 1], [2, 1], [4, 2], [3, 3]),
      T: fc.constantFrom(...sizes),
      S: fc.constantFrom(...sizes),
      D: fc.constantFrom(...dims),
      causal: fc.boolean(),
      masked: fc.boolean(),
      pads: fc.array(fc.tuple(fc.nat(50), fc.boolean()), { minLength: 2, maxLength: 2 }),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
    })
    .filter((r) => !r.causal || r.S >= r.T)
    .map((r) => ({
      B: r.B,
      Hq: r.heads[0]!,
      Hkv: r.heads[1]!,
      T: r.T,
      S: r.S,
      D: r.D,
      causal: r.causal,
      padding: r.masked ? r.pads.slice(0, r.B).map(([n, left]): [number, number] => (left ? [n % r.S, 0] : [0, n % r.S])) : null,
      seed: r.seed,
    }));
}

/** The variants to test with the head dims each runs for; v2 is skipped where the adapter cannot run it. */
function variants(): { kernel: AttentionKernel; dims: number[] }[] {
  const dims = v2Dims();
  return [
    { kernel: 'v2', dims },
    { kernel: 'v1', dims: dims.length > 0 ? dims : [32, 64] },
    { kernel: 'composed', dims: dims.length > 0 ? dims : [32, 64] },
  ];
}

for (const kernel of ['v2', 'v1', 'composed'] as const) {
  const skip = async (t: { skip: (m: string) => void }) => {
    await gpu();
    const dims = variants().find((v) => v.kernel === kernel)!.dims;
    if (dims.length === 0) t.skip('adapter has no single subgroup size v2 is written for');
    return dims;
  };

  test(`attention ${kernel} forward and gradients match the reference on random GQA shapes, padding and causal offsets`, async (t) => {
    const dims = await skip(t);
    if (dims.length === 0) return;
    await withKernel(kernel, dims, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb(dims), (c) => checkCase(c, kernel)),
        { numRuns: 14, seed: { v2: 1301, v1: 1302, composed: 1303 }[kernel] },
      );
    });
  });

  if (kernel === 'v2') {
    test('attention v2 with rows re-read (the layout for large head dims on GPUs) matches the reference', async (t) => {
      const dims = await skip(t);
      if (dims.length === 0) return;
      setV2KeepRows(false);
      try {
        await withKernel(kernel, dims, async () => {
          for (const k of ['attention_forward.v2', 'attention_backward_dq.v2', 'attention_backward_dkv.v2'] as const) {
            assert.equal(v2Layout(getRuntime().info, dims[0]!, k)?.keepRows, false, k);
          }
          const c: Case = { B: 2, Hq: 4, Hkv: 2, T: 21, S: 26, D: dims[0]!, causal: true, padding: [[3, 0], [0, 2]], seed: 41 };
          await checkCase(c, 'v2 rows re-read');
        });
      } finally {
        setV2KeepRows(null);
      }
    });
  }

  test(`attention ${kernel} gives an empty row zeros and zero gradients, and keys past S - T + i none of it`, async (t) => {
    const dims = await skip(t);
    if (dims.length === 0) return;
    await withKernel(kernel, dims, async () => {
      // Left padding of 20 keys with T == S: the first 20 rows of batch row 0 see no key.
      const c: Case = { B: 2, Hq: 2, Hkv: 1, T: 37, S: 37, D: dims[0]!, causal: true, padding: [[20, 0], [0, 3]], seed: 11 };
      await checkCase(c, kernel);
      const x = inputs(c);
      const got = await run(c, x, seededValues(c.B * c.Hq * c.T * c.D, 5));
      for (const [name, a] of Object.entries(got)) assert.ok(a.every(Number.isFinite), `${name} has a non-finite value`);
      for (let h = 0; h < c.Hq; h++) {
        for (let i = 0; i < 20; i++) {
          for (let d = 0; d < c.D; d++) {
            const at = (h * c.T + i) * c.D + d;
            assert.equal(got.out[at], 0, `out of empty row h=${h} i=${i}`);
            assert.equal(got.dq[at], 0, `dq of empty row h=${h} i=${i}`);
          }
        }
      }
    });
  });

  test(`attention ${kernel} gradients match central finite differences`, async (t) => {
    const dims = await skip(t);
    if (dims.length === 0) return;
    await withKernel(kernel, dims, async () => {
      const c: Case = { B: 1, Hq: 2, Hkv: 1, T: 2, S: 3, D: dims[0]!, causal: true, padding: [[1, 0]], seed: 31 };
      const x = inputs(c);
      const d = qkvShapes(c);
      const r = seededValues(c.B * c.Hq * c.T * c.D, 32);
      const rT = tensor(r, d.q);
      const mask = tensor(Uint32Array.from(x.mask!), [c.B, c.S]);
      const analytic = await run(c, x, r);
      for (const name of ['q', 'k', 'v'] as const) {
        const f = (t: Tensor): Tensor => {
          const args = (['q', 'k', 'v'] as const).map((n) => (n === name ? t : tensor(x[n], d[n])));
          const out = attention(args[0]!, args[1]!, args[2]!, { keyPaddingMask: mask });
          const s = sum(mul(out, rT));
          for (const a of [...args, out]) if (a !== t) a.dispose();
          return s;
        };
        const numeric = await finiteDifferences(f, x[name], d[name], 1e-2);
        const got = name === 'q' ? analytic.dq : name === 'k' ? analytic.dk : analytic.dv;
        assertClose(got, numeric, { atol: 3e-3, rtol: 1e-2 }, `${kernel} d${name} vs finite differences`);
      }
      rT.dispose();
      mask.dispose();
    });
  });

  test(`attention ${kernel} in f16 matches the reference on f16-rounded inputs within f16 tolerance`, async (t) => {
    const dims = await skip(t);
    if (dims.length === 0) return;
    if (!hasF16()) {
      t.skip('adapter lacks shader-f16');
      return;
    }
    await withKernel(kernel, dims, async () => {
      const c: Case = { B: 1, Hq: 2, Hkv: 1, T: 19, S: 35, D: dims[0]!, causal: true, padding: [[2, 0]], seed: 71 };
      const round = async (a: Float32Array) => {
        const t16 = tensor(a, [a.length], { dtype: 'f16' });
        const back = (await t16.toArray()) as Float32Array;
        t16.dispose();
        return back;
      };
      const x0 = inputs(c);
      const x: AttentionInputs = { q: await round(x0.q), k: await round(x0.k), v: await round(x0.v), mask: x0.mask };
      const g = await round(seededValues(c.B * c.Hq * c.T * c.D, 72));
      const got = await run(c, x, g, 'f16');
      const r = attentionRefs(c, x);
      const want = refAttentionBackward(r.q, r.k, r.v, refTensor(g, qkvShapes(c).q), { keyPaddingMask: r.mask });
      const tol = { atol: 5e-3, rtol: 2e-2 };
      assertClose(got.out, refAttention(r.q, r.k, r.v, { keyPaddingMask: r.mask }).data, { atol: 2e-3, rtol: 5e-3 }, `${kernel} f16 forward`);
      assertClose(got.dq, want.dq.data, tol, `${kernel} f16 dq`);
      assertClose(got.dk, want.dk.data, tol, `${kernel} f16 dk`);
      assertClose(got.dv, want.dv.data, tol, `${kernel} f16 dv`);
    });
  });

  // Composed attention builds T x S scores by design; only the fused kernels promise O(T) memory.
  if (kernel !== 'composed') test(`attention ${kernel} forward and backward at T = S = 1024 allocate O(T) GPU memory`, async (t) => {
    const dims = await skip(t);
    if (dims.length === 0) return;
    await withKernel(kernel, dims, async () => {
      const m = await measureAttentionMemory(dims[0]!);
      // Forward keeps the output and the logsumexp; backward dq, dk, dv, the [B, H, T, 2] stats and
      // what autograd adds for leaf gradients: a few [B, H, T, D] tensors, never a T x T matrix.
      assert.ok(m.forwardKept <= m.tensorBytes + 4 * m.rows + 4096, `forward keeps ${m.forwardKept} bytes`);
      // Beyond what it keeps: at D = 128 (a subgroup of 32) the output alone is 1 MiB, more than 1/8 of a score matrix.
      assert.ok(m.forwardExtra - m.forwardKept < m.scoreMatrixPerHead / 8, `forward grew GPU memory by ${m.forwardExtra} bytes`);
      assert.ok(m.backwardExtra <= 7 * m.tensorBytes + 8 * m.rows, `backward grew GPU memory by ${m.backwardExtra} bytes`);
      // Beyond dq, dk, dv and the leaf gradients (six [B, H, T, D] tensors: 6 MiB at D = 128, more than a
      // head's score matrix), only the stats: far below a T x T buffer.
      assert.ok(m.backwardExtra - 6 * m.tensorBytes < m.scoreMatrixPerHead / 4, `backward grew GPU memory by ${m.backwardExtra} bytes`);
      assert.ok(m.output.every(Number.isFinite), 'output is finite');
    });
  });
}
