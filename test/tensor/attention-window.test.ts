// attention with a sliding window (Mistral's sliding_window): each kernel variant (v2, v1, composed)
// forward and gradients against the float64 reference at several windows with GQA, padding and causal
// offsets; a window >= S equals plain causal; T == 1 decode against a cache longer than the window;
// the window rule itself on a hand-worked case; bad windows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attention, refAttention, refAttentionBackward, refTensor, tensor, ValueError, type Tensor } from '@huatuo/tensor';
import { getRuntime, attentionKernelFor, setAttentionKernel, type AttentionKernel } from '@huatuo/tensor/internal';
import { attentionInputs, attentionRefs, paddingMask, qkvShapes, type AttentionShape } from './attention-inputs.js';
import { assertClose, gpu, seededValues } from './helpers.js';

const TOL = { atol: 2e-5, rtol: 2e-4 };
const GRAD_TOL = { atol: 1e-4, rtol: 1e-3 };

interface Case extends AttentionShape {
  window: number;
  /** Per batch row: [left padding, right padding] of the key mask, or null for no mask. */
  padding: [number, number][] | null;
}

/** Forward output and the gradients of sum(out * g), with `window` (null: none). */
async function run(c: Case, window: number | null, grads = true) {
  const [x, d] = [attentionInputs(c, paddingMask(c)), qkvShapes(c)];
  const q = tensor(x.q, d.q, { requiresGrad: grads });
  const k = tensor(x.k, d.k, { requiresGrad: grads });
  const v = tensor(x.v, d.v, { requiresGrad: grads });
  const mask = x.mask ? tensor(Uint32Array.from(x.mask), [c.B, c.S]) : null;
  const out = attention(q, k, v, { window, keyPaddingMask: mask });
  const all: (Tensor | null)[] = [q, k, v, mask, out];
  const res: Record<string, Float32Array> = { out: (await out.toArray()) as Float32Array };
  if (grads) {
    out.backward(tensor(seededValues(c.B * c.Hq * c.T * c.D, c.seed + 3), [c.B, c.Hq, c.T, c.D]));
    res['dq'] = (await q.grad!.toArray()) as Float32Array;
    res['dk'] = (await k.grad!.toArray()) as Float32Array;
    res['dv'] = (await v.grad!.toArray()) as Float32Array;
  }
  for (const t of all) t?.dispose();
  return res;
}

function reference(c: Case) {
  const { q, k, v, mask } = attentionRefs(c, attentionInputs(c, paddingMask(c)));
  const opts = { window: c.window, keyPaddingMask: mask };
  const g = refTensor(seededValues(c.B * c.Hq * c.T * c.D, c.seed + 3), [c.B, c.Hq, c.T, c.D]);
  return { out: refAttention(q, k, v, opts).data, ...refAttentionBackward(q, k, v, g, opts) };
}

async function checkCase(c: Case, what: string, grads = true): Promise<void> {
  const got = await run(c, c.window, grads);
  const want = reference(c);
  const name = `${what} ${JSON.stringify(c)}`;
  assertClose(got['out']!, want.out, TOL, `forward ${name}`);
  if (!grads) return;
  assertClose(got['dq']!, want.dq.data, GRAD_TOL, `dq ${name}`);
  assertClose(got['dk']!, want.dk.data, GRAD_TOL, `dk ${name}`);
  assertClose(got['dv']!, want.dv.data, GRAD_TOL, `dv ${name}`);
}

/** The head dim each variant runs here: 4 x the subgroup size for v2 (none without one fixed size), else 8. */
function dimFor(kernel: AttentionKernel): number | null {
  const info = getRuntime().info;
  const sg = info.subgroupMinSize;
  const v2 = info.features.has('subgroups') && sg !== 0 && sg === info.subgroupMaxSize ? 4 * sg : null;
  return kernel === 'v2' ? v2 : (v2 ?? 8);
}

async function withKernel(kernel: AttentionKernel, D: number, body: () => Promise<void>): Promise<void> {
  setAttentionKernel(kernel);
  try {
    assert.equal(attentionKernelFor(D), kernel, `forced ${kernel} must run for D=${D}`);
    await body();
  } finally {
    setAttentionKernel(null);
  }
}

test('a sliding window of w keys: query i sees keys i - w < j <= i (uniform scores average the values seen)', async () => {
  await gpu();
  // q = 0: every seen key scores the same, so row i is the mean of the values it sees.
  const [T, D, w] = [5, 4, 2];
  const vals = Float32Array.from({ length: T * D }, (_, x) => Math.floor(x / D) * 10 + (x % D));
  const expected = new Float32Array(T * D);
  for (let i = 0; i < T; i++) {
    const seen = [i - 1, i].filter((j) => j >= 0);
    for (let d = 0; d < D; d++) expected[i * D + d] = seen.reduce((s, j) => s + vals[j * D + d]!, 0) / seen.length;
  }
  const zeros = new Float32Array(T * D);
  const ref = refAttention(refTensor(zeros, [1, 1, T, D]), refTensor(zeros, [1, 1, T, D]), refTensor(vals, [1, 1, T, D]), { window: w });
  assertClose(ref.data, expected, TOL, 'reference');
  const q = tensor(zeros, [1, 1, T, D]);
  const v = tensor(vals, [1, 1, T, D]);
  assertClose((await attention(q, q, v, { window: w }).toArray()) as Float32Array, expected, TOL, 'attention');
});

for (const kernel of ['v2', 'v1', 'composed'] as const) {
  test(`attention ${kernel} with a sliding window matches the reference, forward and backward (GQA, padding, offsets)`, async (t) => {
    await gpu();
    const D = dimFor(kernel);
    if (D === null) return t.skip('adapter has no single subgroup size v2 is written for');
    await withKernel(kernel, D, async () => {
      const cases: Case[] = [
        { B: 2, Hq: 4, Hkv: 2, T: 37, S: 37, D, window: 5, padding: [[6, 0], [0, 3]], seed: 7 },
        { B: 1, Hq: 2, Hkv: 1, T: 33, S: 47, D, window: 16, padding: null, seed: 8 },
        { B: 1, Hq: 3, Hkv: 3, T: 20, S: 20, D, window: 1, padding: null, seed: 9 },
        { B: 2, Hq: 2, Hkv: 1, T: 15, S: 40, D, window: 33, padding: [[0, 2], [12, 0]], seed: 10 },
      ];
      for (const c of cases) await checkCase(c, kernel);
    });
  });

  test(`attention ${kernel} with a window as long as every key's distance equals plain causal attention`, async (t) => {
    await gpu();
    const D = dimFor(kernel);
    if (D === null) return t.skip('adapter has no single subgroup size v2 is written for');
    await withKernel(kernel, D, async () => {
      const c: Case = { B: 1, Hq: 4, Hkv: 2, T: 19, S: 23, D, window: 23, padding: [[2, 0]], seed: 12 };
      const plain = await run(c, null);
      for (const window of [23, 24, 1000]) {
        const got = await run(c, window);
        for (const key of Object.keys(plain)) assert.deepEqual(got[key], plain[key], `${kernel} ${key} at window ${window}`);
      }
    });
  });

  test(`attention ${kernel} decoding one query against a cache longer than the window leaves out the older keys`, async (t) => {
    await gpu();
    const D = dimFor(kernel);
    if (D === null) return t.skip('adapter has no single subgroup size v2 is written for');
    await withKernel(kernel, D, async () => {
      for (const c of [
        { B: 2, Hq: 4, Hkv: 2, T: 1, S: 300, D, window: 37, padding: [[0, 0], [280, 0]], seed: 21 },
        { B: 1, Hq: 2, Hkv: 1, T: 1, S: 40, D, window: 7, padding: null, seed: 22 },
      ] satisfies Case[]) {
        await checkCase(c, `${kernel} decode`, false);
        await checkCase(c, `${kernel} T = 1 with gradients`);
      }
    });
  });
}

test('attention refuses a negative or fractional window, and a window without the causal mask', async () => {
  await gpu();
  const q = tensor(new Float32Array(16), [1, 1, 4, 4]);
  assert.throws(() => attention(q, q, q, { window: -1 }), (e: unknown) => e instanceof ValueError && /window is -1/.test(e.message));
  assert.throws(() => attention(q, q, q, { window: 1.5 }), ValueError);
  assert.throws(() => attention(q, q, q, { window: 2, causal: false }), (e: unknown) => e instanceof ValueError && /causal/.test(e.message));
  q.dispose();
});
