// attention: forward and gradients against the float64 reference (GQA, causal offset, padding masks,
// empty rows), finite differences, the T == 1 decode path, f16, O(T) memory and input checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  attention,
  contiguous,
  hasF16,
  mul,
  noGrad,
  refAttention,
  refAttentionBackward,
  refTensor,
  runtimeStats,
  slice,
  sum,
  tensor,
  toArray,
  transpose,
  DisposedError,
  DTypeError,
  ShapeError,
  type Tensor,
} from '@huatuo/tensor';
import { attentionInputs, attentionRefs, type AttentionInputs, type AttentionShape } from './attention-inputs.js';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';
import { measureAttentionMemory } from './attention-memory.js';

interface Case extends AttentionShape {
  causal: boolean;
  /** Per batch row: [left padding, right padding] of the key mask, or null for no mask. */
  padding: [number, number][] | null;
  maskDType: 'u32' | 'i32' | 'f32';
}

const TOL = { atol: 2e-5, rtol: 2e-4 };
const GRAD_TOL = { atol: 1e-4, rtol: 1e-3 };

function describe(c: Case): string {
  return `B=${c.B} Hq=${c.Hq} Hkv=${c.Hkv} T=${c.T} S=${c.S} D=${c.D} causal=${c.causal} padding=${JSON.stringify(c.padding)} mask ${c.maskDType} seed=${c.seed}`;
}

function maskValues(c: Case): Float32Array | null {
  if (!c.padding) return null;
  const m = new Float32Array(c.B * c.S);
  c.padding.forEach(([left, right], b) => {
    for (let j = left; j < c.S - right; j++) m[b * c.S + j] = c.maskDType === 'f32' ? 0.5 + j : 1 + j;
  });
  return m;
}

function maskTensor(c: Case, values: Float32Array | null): Tensor | null {
  if (!values) return null;
  if (c.maskDType === 'f32') return tensor(values, [c.B, c.S]);
  if (c.maskDType === 'i32') return tensor(Int32Array.from(values), [c.B, c.S]);
  return tensor(Uint32Array.from(values), [c.B, c.S]);
}

const inputs = (c: Case) => attentionInputs(c, maskValues(c));

/** Shapes from the task's grid: GQA groups, T and S in {1, 3, 17, 65} (S >= T when causal), D in {4, 8, 16, 64, 6}. */
function caseArb(withMask: boolean | null, sizes = [1, 3, 17, 65]): fc.Arbitrary<Case> {
  return fc
    .record({
      B: fc.constantFrom(1, 2),
      heads: fc.constantFrom([1, 1], [2, 1], [2, 2], [4, 1], [4, 2], [4, 4]),
      T: fc.constantFrom(...sizes),
      S: fc.constantFrom(...sizes),
      D: fc.constantFrom(4, 8, 16, 64, 6),
      causal: fc.boolean(),
      masked: withMask === null ? fc.boolean() : fc.constant(withMask),
      pads: fc.array(fc.tuple(fc.nat(70), fc.nat(70), fc.boolean()), { minLength: 2, maxLength: 2 }),
      maskDType: fc.constantFrom('u32' as const, 'i32' as const, 'f32' as const),
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
      // Left padding or right padding per row, leaving at least one real key.
      padding: r.masked
        ? r.pads.slice(0, r.B).map(([n, , left]): [number, number] => (left ? [n % r.S, 0] : [0, n % r.S]))
        : null,
      maskDType: r.maskDType,
      seed: r.seed,
    }));
}

async function runForward(c: Case, x: AttentionInputs, dtype: 'f32' | 'f16' = 'f32'): Promise<Float32Array> {
  const q = tensor(x.q, [c.B, c.Hq, c.T, c.D], { dtype });
  const k = tensor(x.k, [c.B, c.Hkv, c.S, c.D], { dtype });
  const v = tensor(x.v, [c.B, c.Hkv, c.S, c.D], { dtype });
  const mask = maskTensor(c, x.mask);
  const out = attention(q, k, v, { causal: c.causal, keyPaddingMask: mask });
  const data = (await out.toArray()) as Float32Array;
  for (const t of [q, k, v, mask, out]) t?.dispose();
  return data;
}

async function runGradients(c: Case, x: AttentionInputs, r: Float32Array): Promise<{ dq: Float32Array; dk: Float32Array; dv: Float32Array }> {
  const q = tensor(x.q, [c.B, c.Hq, c.T, c.D], { requiresGrad: true });
  const k = tensor(x.k, [c.B, c.Hkv, c.S, c.D], { requiresGrad: true });
  const v = tensor(x.v, [c.B, c.Hkv, c.S, c.D], { requiresGrad: true });
  const mask = maskTensor(c, x.mask);
  const g = tensor(r, [c.B, c.Hq, c.T, c.D]);
  const out = attention(q, k, v, { causal: c.causal, keyPaddingMask: mask });
  out.backward(g);
  const grads = {
    dq: (await q.grad!.toArray()) as Float32Array,
    dk: (await k.grad!.toArray()) as Float32Array,
    dv: (await v.grad!.toArray()) as Float32Array,
  };
  for (const t of [q, k, v, mask, g, out]) t?.dispose();
  return grads;
}

test('attention forward matches the reference on random GQA shapes, with and without padding masks', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb(null), async (c) => {
      const x = inputs(c);
      const r = attentionRefs(c, x);
      const expected = refAttention(r.q, r.k, r.v, { causal: c.causal, keyPaddingMask: r.mask });
      assertClose(await runForward(c, x), expected.data, TOL, `forward ${describe(c)}`);
    }),
    { numRuns: 20, seed: 20240611 },
  );
});

test('attention forward with a padding mask matches the reference on every mask dtype', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb(true), async (c) => {
      const x = inputs(c);
      const r = attentionRefs(c, x);
      const expected = refAttention(r.q, r.k, r.v, { causal: c.causal, keyPaddingMask: r.mask });
      assertClose(await runForward(c, x), expected.data, TOL, `forward ${describe(c)}`);
    }),
    { numRuns: 12, seed: 7 },
  );
});

test('a query row that sees no key outputs zeros and gets zero gradient, with no NaN anywhere', async () => {
  await gpu();
  // Left padding of 4 keys with T == S: the first 4 rows of batch row 0 see no real key.
  const c: Case = { B: 2, Hq: 2, Hkv: 1, T: 6, S: 6, D: 4, causal: true, padding: [[4, 0], [0, 0]], maskDType: 'i32', seed: 11 };
  const x = inputs(c);
  const out = await runForward(c, x);
  const r = attentionRefs(c, x);
  assertClose(out, refAttention(r.q, r.k, r.v, { keyPaddingMask: r.mask }).data, TOL, 'forward with empty rows');
  for (let h = 0; h < c.Hq; h++) {
    for (let i = 0; i < 4; i++) {
      for (let d = 0; d < c.D; d++) assert.equal(out[(h * c.T + i) * c.D + d], 0, `row b=0 h=${h} i=${i} must be 0`);
    }
  }
  const grads = await runGradients(c, x, seededValues(c.B * c.Hq * c.T * c.D, 5));
  for (const [name, g] of Object.entries(grads)) assert.ok(g.every(Number.isFinite), `${name} has a non-finite value`);
  for (let h = 0; h < c.Hq; h++) {
    for (let i = 0; i < 4; i++) {
      for (let d = 0; d < c.D; d++) assert.equal(grads.dq[(h * c.T + i) * c.D + d], 0, `dq of empty row h=${h} i=${i}`);
    }
  }
  // The padded keys of batch row 0 get no gradient either.
  for (let j = 0; j < 4; j++) {
    for (let d = 0; d < c.D; d++) {
      assert.equal(grads.dk[j * c.D + d], 0, `dk of padded key ${j}`);
      assert.equal(grads.dv[j * c.D + d], 0, `dv of padded key ${j}`);
    }
  }
});

test('the causal mask is aligned bottom-right when S > T (queries after a KV cache)', async () => {
  await gpu();
  const c: Case = { B: 1, Hq: 4, Hkv: 2, T: 3, S: 9, D: 8, causal: true, padding: null, maskDType: 'u32', seed: 3 };
  const x = inputs(c);
  const r = attentionRefs(c, x);
  const out = await runForward(c, x);
  assertClose(out, refAttention(r.q, r.k, r.v).data, TOL, 'forward S > T');
  // The last query sees every key: the same as a non-causal run for that row.
  const full = refAttention(r.q, r.k, r.v, { causal: false });
  for (let h = 0; h < c.Hq; h++) {
    const row = (h * c.T + c.T - 1) * c.D;
    assertClose(out.slice(row, row + c.D), full.data.slice(row, row + c.D), TOL, `last row of head ${h}`);
  }
});

test('attention reads strided views (q transposed from [B, T, H, D]) and applies options.scale', async () => {
  await gpu();
  const [B, T, H, D] = [2, 5, 2, 6];
  const qd = seededValues(B * T * H * D, 21);
  const kd = seededValues(B * T * H * D, 22);
  const vd = seededValues(B * T * H * D, 23);
  const asBHTD = (d: Float32Array) => {
    const out = new Float32Array(d.length);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let c = 0; c < D; c++) {
      out[((b * H + h) * T + t) * D + c] = d[((b * T + t) * H + h) * D + c]!;
    }
    return refTensor(out, [B, H, T, D]);
  };
  const views = [qd, kd, vd].map((d) => tensor(d, [B, T, H, D]));
  const out = attention(...(views.map((t) => transpose(t, 1, 2)) as [Tensor, Tensor, Tensor]), { scale: 0.7 });
  const expected = refAttention(asBHTD(qd), asBHTD(kd), asBHTD(vd), { scale: 0.7 });
  assertClose((await out.toArray()) as Float32Array, expected.data, TOL, 'strided views');
  for (const t of [...views, out]) t.dispose();
});

test('attention supports head dims up to 256, also not a multiple of 4', async () => {
  await gpu();
  for (const D of [256, 100]) {
    const c: Case = { B: 1, Hq: 2, Hkv: 1, T: 5, S: 7, D, causal: true, padding: [[1, 0]], maskDType: 'u32', seed: D };
    const x = inputs(c);
    const r = attentionRefs(c, x);
    assertClose(await runForward(c, x), refAttention(r.q, r.k, r.v, { keyPaddingMask: r.mask }).data, TOL, `forward D=${D}`);
    const g = seededValues(c.B * c.Hq * c.T * c.D, 9);
    const got = await runGradients(c, x, g);
    const want = refAttentionBackward(r.q, r.k, r.v, refTensor(g, [c.B, c.Hq, c.T, c.D]), { keyPaddingMask: r.mask });
    assertClose(got.dq, want.dq.data, GRAD_TOL, `dq D=${D}`);
    assertClose(got.dk, want.dk.data, GRAD_TOL, `dk D=${D}`);
    assertClose(got.dv, want.dv.data, GRAD_TOL, `dv D=${D}`);
  }
});

test('attention gradients match central finite differences (GQA, causal offset, padding)', async () => {
  await gpu();
  const c: Case = { B: 1, Hq: 2, Hkv: 1, T: 3, S: 5, D: 4, causal: true, padding: [[1, 0]], maskDType: 'f32', seed: 31 };
  const x = inputs(c);
  const r = seededValues(c.B * c.Hq * c.T * c.D, 32);
  const rT = tensor(r, [c.B, c.Hq, c.T, c.D]);
  const mask = maskTensor(c, x.mask);
  const shapes = { q: [c.B, c.Hq, c.T, c.D], k: [c.B, c.Hkv, c.S, c.D], v: [c.B, c.Hkv, c.S, c.D] };
  const analytic = await runGradients(c, x, r);
  for (const name of ['q', 'k', 'v'] as const) {
    const f = (t: Tensor): Tensor => {
      const args = (['q', 'k', 'v'] as const).map((n) => (n === name ? t : tensor(x[n], shapes[n])));
      const out = attention(args[0]!, args[1]!, args[2]!, { keyPaddingMask: mask });
      const s = sum(mul(out, rT));
      for (const a of [...args, out]) if (a !== t) a.dispose();
      return s;
    };
    const numeric = await finiteDifferences(f, x[name], shapes[name], 1e-2);
    const got = name === 'q' ? analytic.dq : name === 'k' ? analytic.dk : analytic.dv;
    assertClose(got, numeric, { atol: 3e-3, rtol: 1e-2 }, `d${name} vs finite differences`);
  }
  rT.dispose();
  mask?.dispose();
});

test('attention gradients for q, k and v match the reference on random shapes', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb(null, [1, 3, 17, 40]), async (c) => {
      const x = inputs(c);
      const r = attentionRefs(c, x);
      const g = seededValues(c.B * c.Hq * c.T * c.D, c.seed + 3);
      const got = await runGradients(c, x, g);
      const want = refAttentionBackward(r.q, r.k, r.v, refTensor(g, [c.B, c.Hq, c.T, c.D]), {
        causal: c.causal,
        keyPaddingMask: r.mask,
      });
      assertClose(got.dq, want.dq.data, GRAD_TOL, `dq ${describe(c)}`);
      assertClose(got.dk, want.dk.data, GRAD_TOL, `dk ${describe(c)}`);
      assertClose(got.dv, want.dv.data, GRAD_TOL, `dv ${describe(c)}`);
    }),
    { numRuns: 12, seed: 99 },
  );
});

test('the T = 1 decode path equals the last row of the full causal forward against the same keys', async () => {
  await gpu();
  for (const c of [
    { B: 2, Hq: 4, Hkv: 2, T: 17, S: 17, D: 16, causal: true, padding: [[3, 0], [0, 0]], maskDType: 'u32', seed: 41 },
    { B: 1, Hq: 2, Hkv: 2, T: 65, S: 65, D: 6, causal: true, padding: null, maskDType: 'u32', seed: 42 },
  ] satisfies Case[]) {
    const x = inputs(c);
    const full = await runForward(c, x);
    // The last query of every head, as a [B, Hq, 1, D] query against all S keys.
    const qLast = new Float32Array(c.B * c.Hq * c.D);
    for (let bh = 0; bh < c.B * c.Hq; bh++) qLast.set(x.q.subarray((bh * c.T + c.T - 1) * c.D, (bh * c.T + c.T) * c.D), bh * c.D);
    const decode = await runForward({ ...c, T: 1 }, { ...x, q: qLast });
    const lastRows = new Float32Array(c.B * c.Hq * c.D);
    for (let bh = 0; bh < c.B * c.Hq; bh++) lastRows.set(full.subarray((bh * c.T + c.T - 1) * c.D, (bh * c.T + c.T) * c.D), bh * c.D);
    assertClose(decode, lastRows, TOL, `decode vs last full row ${describe(c)}`);
  }
});

test('the T = 1 decode path matches the reference over many key splits, with padding, and its gradients too', async () => {
  await gpu();
  const c: Case = { B: 2, Hq: 4, Hkv: 1, T: 1, S: 300, D: 8, causal: true, padding: [[37, 0], [0, 250]], maskDType: 'f32', seed: 51 };
  const x = inputs(c);
  const r = attentionRefs(c, x);
  assertClose(await runForward(c, x), refAttention(r.q, r.k, r.v, { keyPaddingMask: r.mask }).data, TOL, 'decode forward');
  const g = seededValues(c.B * c.Hq * c.T * c.D, 52);
  const got = await runGradients(c, x, g);
  const want = refAttentionBackward(r.q, r.k, r.v, refTensor(g, [c.B, c.Hq, c.T, c.D]), { keyPaddingMask: r.mask });
  assertClose(got.dq, want.dq.data, GRAD_TOL, 'decode dq');
  assertClose(got.dk, want.dk.data, GRAD_TOL, 'decode dk');
  assertClose(got.dv, want.dv.data, GRAD_TOL, 'decode dv');
});

test('f16 attention matches the reference on f16-rounded inputs within f16 tolerance', async (t) => {
  await gpu();
  if (!hasF16()) {
    t.skip('adapter lacks shader-f16');
    return;
  }
  for (const c of [
    { B: 1, Hq: 4, Hkv: 2, T: 17, S: 17, D: 16, causal: true, padding: [[2, 0]], maskDType: 'u32', seed: 61 },
    { B: 2, Hq: 2, Hkv: 1, T: 3, S: 9, D: 6, causal: true, padding: null, maskDType: 'u32', seed: 62 },
    { B: 1, Hq: 2, Hkv: 1, T: 1, S: 40, D: 8, causal: true, padding: null, maskDType: 'u32', seed: 63 },
  ] satisfies Case[]) {
    const x = inputs(c);
    // Round the inputs through f16 so the reference sees the values the kernel reads.
    const rounded: AttentionInputs = { ...x };
    for (const n of ['q', 'k', 'v'] as const) {
      const t16 = tensor(x[n], [x[n].length], { dtype: 'f16' });
      rounded[n] = (await t16.toArray()) as Float32Array;
      t16.dispose();
    }
    const r = attentionRefs(c, rounded);
    const expected = refAttention(r.q, r.k, r.v, { keyPaddingMask: r.mask });
    assertClose(await runForward(c, rounded, 'f16'), expected.data, { atol: 2e-3, rtol: 5e-3 }, `f16 forward ${describe(c)}`);
  }
});

test('f16 attention gradients match the reference within f16 tolerance', async (t) => {
  await gpu();
  if (!hasF16()) {
    t.skip('adapter lacks shader-f16');
    return;
  }
  const c: Case = { B: 1, Hq: 2, Hkv: 1, T: 17, S: 17, D: 16, causal: true, padding: [[2, 0]], maskDType: 'u32', seed: 71 };
  const x = inputs(c);
  const toF16 = async (d: Float32Array) => {
    const t16 = tensor(d, [d.length], { dtype: 'f16' });
    const back = (await t16.toArray()) as Float32Array;
    t16.dispose();
    return back;
  };
  const rounded: AttentionInputs = { q: await toF16(x.q), k: await toF16(x.k), v: await toF16(x.v), mask: x.mask };
  const g = await toF16(seededValues(c.B * c.Hq * c.T * c.D, 72));
  const dims = { q: [c.B, c.Hq, c.T, c.D], k: [c.B, c.Hkv, c.S, c.D], v: [c.B, c.Hkv, c.S, c.D] };
  const [q, k, v] = (['q', 'k', 'v'] as const).map((n) => tensor(rounded[n], dims[n], { dtype: 'f16', requiresGrad: true })) as [Tensor, Tensor, Tensor];
  const mask = maskTensor(c, x.mask);
  const out = attention(q, k, v, { keyPaddingMask: mask });
  out.backward(tensor(g, dims.q, { dtype: 'f16' }));
  const r = attentionRefs(c, rounded);
  const want = refAttentionBackward(r.q, r.k, r.v, refTensor(g, dims.q), { keyPaddingMask: r.mask });
  const tol = { atol: 5e-3, rtol: 2e-2 };
  assertClose((await q.grad!.toArray()) as Float32Array, want.dq.data, tol, 'f16 dq');
  assertClose((await k.grad!.toArray()) as Float32Array, want.dk.data, tol, 'f16 dk');
  assertClose((await v.grad!.toArray()) as Float32Array, want.dv.data, tol, 'f16 dv');
  for (const x of [q, k, v, mask, out]) x?.dispose();
});

test('attention forward and backward at T = S = 1024 allocate O(T) GPU memory, far below a T x T score matrix', async () => {
  await gpu();
  const m = await measureAttentionMemory(16);
  // Forward keeps the output and the logsumexp [B, H, T]. Backward allocates dq, dk, dv, a
  // [B, H, T, 2] buffer and whatever autograd adds to accumulate leaf gradients: a few [B, H, T, D]
  // tensors, against 4 MiB for a single head's T x T score matrix.
  assert.ok(m.forwardKept <= m.tensorBytes + 4 * m.rows + 4096, `forward keeps ${m.forwardKept} bytes`);
  assert.ok(m.forwardExtra - m.forwardKept < m.scoreMatrixPerHead / 16, `forward grew GPU memory by ${m.forwardExtra} bytes`);
  assert.ok(m.backwardExtra <= 7 * m.tensorBytes + 8 * m.rows, `backward grew GPU memory by ${m.backwardExtra} bytes`);
  assert.ok(m.backwardExtra - 6 * m.tensorBytes < m.scoreMatrixPerHead / 4, `backward grew GPU memory by ${m.backwardExtra} bytes`);
  assert.ok(m.output.every(Number.isFinite), 'output is finite');
});

test('attention rejects mismatched shapes, dtypes and disposed inputs, naming the op and the shapes', async () => {
  await gpu();
  const t = (shape: number[], dtype: 'f32' | 'i32' = 'f32') =>
    tensor(dtype === 'f32' ? new Float32Array(shape.reduce((a, b) => a * b, 1)) : new Int32Array(shape.reduce((a, b) => a * b, 1)), shape);
  const q = t([1, 4, 3, 8]);
  const k = t([1, 2, 5, 8]);
  const v = t([1, 2, 5, 8]);
  assert.throws(() => attention(q, k, t([1, 2, 4, 8])), (e: Error) => e instanceof ShapeError && /attention: .*\[1, 2, 4, 8\]/.test(e.message));
  assert.throws(() => attention(q, t([1, 3, 5, 8]), t([1, 3, 5, 8])), (e: Error) => e instanceof ShapeError && /attention: .*multiple/.test(e.message));
  assert.throws(() => attention(q, t([1, 2, 5, 6]), t([1, 2, 5, 6])), (e: Error) => e instanceof ShapeError && /attention: q is \[1, 4, 3, 8\], k is \[1, 2, 5, 6\]/.test(e.message));
  assert.throws(() => attention(q, t([2, 2, 5, 8]), t([2, 2, 5, 8])), (e: Error) => e instanceof ShapeError && /batch/.test(e.message));
  assert.throws(() => attention(t([4, 3, 8]), k, v), (e: Error) => e instanceof ShapeError && /attention: q is \[4, 3, 8\]/.test(e.message));
  assert.throws(() => attention(q, k, v, { keyPaddingMask: t([1, 4]) }), (e: Error) => e instanceof ShapeError && /keyPaddingMask is \[1, 4\]/.test(e.message));
  assert.throws(() => attention(q, t([1, 2, 5, 8], 'i32'), v), (e: Error) => e instanceof DTypeError && /attention/.test(e.message));
  if (hasF16()) {
    const k16 = tensor(new Float32Array(80), [1, 2, 5, 8], { dtype: 'f16' });
    assert.throws(() => attention(q, k16, v), (e: Error) => e instanceof DTypeError && /attention: q is f32, k is f16/.test(e.message));
    k16.dispose();
  }
  const gone = t([1, 2, 5, 8]);
  gone.dispose();
  assert.throws(() => attention(q, k, gone), (e: Error) => e instanceof DisposedError && /attention \(v\): tensor \[1, 2, 5, 8\]/.test(e.message));
  for (const x of [q, k, v]) x.dispose();
});

test('decoding reads k and v in place from a KV cache prefix: the same bits as contiguous copies, and only the decode kernels run', async () => {
  await gpu();
  for (const [B, Hq, Hkv, D] of [
    [2, 4, 2, 16],
    [1, 2, 1, 6],
  ] as const) {
    const [S, L] = [37, 64]; // filled positions, cache length
    const q = tensor(seededValues(B * Hq * D, 61), [B, Hq, 1, D]);
    const kCache = tensor(seededValues(B * Hkv * L * D, 62), [B, Hkv, L, D]);
    const vCache = tensor(seededValues(B * Hkv * L * D, 63), [B, Hkv, L, D]);
    const mask = tensor(Int32Array.from({ length: B * S }, (_, i) => (i % S < 3 && i >= S ? 0 : 1)), [B, S]);
    const [k, v] = [slice(kCache, 2, 0, S), slice(vCache, 2, 0, S)];
    const before = runtimeStats().dispatches;
    const inPlace = noGrad(() => attention(q, k, v, { keyPaddingMask: mask }));
    assert.equal(runtimeStats().dispatches - before, 2, `B ${B} Hkv ${Hkv} D ${D}: decode partial and combine, no copies`);
    const copied = noGrad(() => attention(q, contiguous(k), contiguous(v), { keyPaddingMask: mask }));
    assert.deepEqual(await toArray(inPlace), await toArray(copied), `B ${B} Hkv ${Hkv} D ${D}`);
    for (const t of [q, kCache, vCache, mask, k, v, inPlace, copied]) t.dispose();
  }
});
