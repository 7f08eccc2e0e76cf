// Biases on the concatenated fused product (fusedLinear's `bias`: Qwen2's q, k and v): against the CPU
// reference in f32 and f16, 1 and 2 rows, with and without the norm and adapters; bit for bit equal to the
// separate ops decoding would run instead (linear(x, w, b), then the adapter's update, PEFT's order); its argument
// checks; and the on-device check refusing a kernel that drops the bias or adds it twice.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  cat, checkFusedLinear, decodeCandidates, f16BitsToF32, f32ToF16Bits, fusedLinear, fusedLinearFits, fusedLoraAdd, hasF16, linear, noGrad, refFusedLinear,
  refRmsNorm, refTensor, reshape, setMatmulVariant, slice, tensor, transpose, type FloatDType, type FusedLora, type RefFusedAdapter, type Tensor,
} from '@huatuo/tensor';
import { setFusedLinearRewrite } from '@huatuo/tensor/internal';
import { assertClose, gpu, scoped, seededValues } from './helpers.js';

const EPS = 1e-5;

function stored(v: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'f32' ? v : f16BitsToF32(f32ToF16Bits(v));
}

/** Where the bias lives beside the adapters' B: its own tensor, or a view of one packed with B (as decoding packs them). */
type Layout = 'own' | 'packed';

// Rows of x, K / 8, the weights' rows, seed, the norm or not, each weight's adapter [rank, scaling] or null (used or not), the bias layout.
const caseArb = (ms: number[]) =>
  fc.record({
    M: fc.constantFrom(...ms),
    K8: fc.constantFrom(1, 5, 33),
    rows: fc.array(fc.constantFrom(1, 3, 17, 66), { minLength: 1, maxLength: 3 }),
    seed: fc.integer({ min: 1, max: 1e6 }),
    norm: fc.boolean(),
    adapters: fc.array(fc.option(fc.tuple(fc.integer({ min: 1, max: 8 }), fc.constantFrom(2, 0.5, -0.75)), { nil: null }), { minLength: 3, maxLength: 3 }),
    withAdapters: fc.boolean(),
    layout: fc.constantFrom<Layout>('own', 'packed'),
  });

type Case = ReturnType<typeof caseArb> extends fc.Arbitrary<infer C> ? C : never;

/** The adapters' B and the bias as views of one packed tensor. */
function packedWith(lora: FusedLora, bias: Tensor): { lora: FusedLora; bias: Tensor } {
  const n = lora.b.size;
  const all = cat([reshape(lora.b, [n]), bias], 0);
  return { lora: { ...lora, b: slice(all, 0, 0, n) }, bias: slice(all, 0, n, n + bias.size) };
}

async function checkReference(dtype: FloatDType, c: Case): Promise<void> {
  const K = 8 * c.K8;
  const adapters = c.withAdapters ? c.rows.map((_, i) => c.adapters[i] ?? null) : c.rows.map(() => null);
  const what = `${dtype} M ${c.M} K ${K} rows [${c.rows}] norm ${c.norm} adapters ${JSON.stringify(adapters)} bias ${c.layout} seed ${c.seed}`;
  await scoped(async () => {
    const values = (n: number, s: number, scale = 1) => stored(seededValues(n, c.seed + s, scale), dtype);
    const xv = values(c.M * K, 0);
    const gv = values(K, 1, 2);
    const wv = c.rows.map((n, i) => values(n * K, 10 + i, 0.2));
    const bv = c.rows.map((n, i) => values(n, 20 + i));
    const av = adapters.map((a, i) => (a === null ? null : values(a[0] * K, 30 + i, 0.2)));
    const Bv = adapters.map((a, i) => (a === null ? null : values(c.rows[i]! * a[0], 40 + i)));
    const x = tensor(xv, [c.M, 1, K], { dtype });
    const norm = c.norm ? { weight: tensor(gv, [K], { dtype }), eps: EPS } : undefined;
    const ws = wv.map((v, i) => tensor(v, [c.rows[i]!, K], { dtype }));
    let bias = tensor(Float32Array.from(bv.flatMap((v) => [...v])), [c.rows.reduce((s, n) => s + n, 0)], { dtype });
    const y = noGrad(() => {
      assert.ok(fusedLinearFits(x, ws, norm), `${what}: fits`);
      let lora: FusedLora | undefined;
      if (adapters.some((a) => a !== null)) {
        const As = adapters.flatMap((a, i) => (a === null ? [] : [tensor(av[i]!, [a[0], K], { dtype })]));
        const bs = adapters.flatMap((a, i) => (a === null ? [] : [tensor(Bv[i]!, [c.rows[i]! * a[0]], { dtype })]));
        lora = { h: fusedLinear(x, As, norm), b: cat(bs, 0), adapters: adapters.map((a) => a && { rank: a[0], scaling: a[1] }) };
        if (c.layout === 'packed') ({ lora, bias } = packedWith(lora, bias));
      }
      return fusedLinear(x, ws, norm, lora, bias);
    });
    const rx = refTensor(xv, [c.M, 1, K]);
    const input = c.norm ? refRmsNorm(rx, refTensor(gv, [K]), EPS) : rx;
    const refAdapters = adapters.map((a, i): RefFusedAdapter | null =>
      a === null ? null : { A: refTensor(av[i]!, [a[0], K]), B: refTensor(Bv[i]!, [c.rows[i]!, a[0]]), scaling: a[1] },
    );
    const expected = refFusedLinear(input, wv.map((v, i) => refTensor(v, [c.rows[i]!, K])), { adapters: refAdapters, biases: bv.map((v) => refTensor(v, [v.length])) });
    // Bounds at the output's scale: f16 rounds x's norm, h = x A^T, the update and the product each once.
    const scale = expected.data.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
    const tol = dtype === 'f32' ? { atol: 2e-5 * scale, rtol: 1e-4 } : { atol: 4e-3 * scale, rtol: 4e-3 };
    assertClose(await y.toArray(), expected.data, tol, what);
  });
}

test('fusedLinear with biases matches the CPU reference in f32, one and two rows, with and without the norm and adapters', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  await fc.assert(fc.asyncProperty(caseArb([1, 2]), (c) => checkReference('f32', c)), { numRuns: 20 });
});

test('fusedLinear with biases matches the CPU reference in f16, one and two rows, with and without the norm and adapters', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await fc.assert(fc.asyncProperty(caseArb([1, 2]), (c) => checkReference('f16', c)), { numRuns: 20 });
});

test('a biased fused q/k/v of one row equals the separate ops bit for bit: linear(x, w, b) rounded once, then the adapter update, as PEFT orders them', async (t) => {
  const info = await gpu();
  const wide = decodeCandidates(info).find((v) => v.wide && v.groups === undefined);
  if (wide === undefined) return t.skip('adapter has no fixed subgroup size');
  setMatmulVariant(wide);
  try {
    const K = 8 * 33;
    const rows = [16, 4, 4]; // multiples of 4: matmul reads w in vec4 rows
    for (const dtype of hasF16() ? (['f32', 'f16'] as const) : (['f32'] as const)) {
      for (const adapted of [false, true]) {
        await scoped(async () => {
          const make = (shape: number[], s: number, scale = 1) => tensor(seededValues(shape.reduce((p, d) => p * d, 1), s, scale), shape, { dtype });
          const x = make([1, 1, K], 1);
          const ws = rows.map((n, i) => make([n, K], 10 + i, 0.2));
          const bs = rows.map((n, i) => make([n], 20 + i));
          // Adapters on q (r 8, scaling 2) and v (r 3, scaling -0.75), as Linear adds them in decoding.
          const ads = [[8, 2], null, [3, -0.75]] as const;
          const As = ads.map((a, i) => (a === null ? null : make([a[0], K], 30 + i, 0.2)));
          const Bs = ads.map((a, i) => (a === null ? null : make([rows[i]!, a[0]], 40 + i)));
          const [fused, separate] = noGrad(() => {
            // PEFT's order: the base layer's output with its bias, then the adapter's update on top.
            const outputs = ws.map((w, i) => {
              const y = linear(x, w, bs[i]!);
              const a = ads[i];
              return adapted && a !== null && a !== undefined ? fusedLoraAdd(y, fusedLinear(x, [As[i]!]), Bs[i]!, a[1]) : y;
            });
            const lora: FusedLora | undefined = adapted
              ? { h: fusedLinear(x, [As[0]!, As[2]!]), b: cat([reshape(Bs[0]!, [Bs[0]!.size]), reshape(Bs[2]!, [Bs[2]!.size])], 0), adapters: ads.map((a) => a && { rank: a[0], scaling: a[1] }) }
              : undefined;
            return [fusedLinear(x, ws, undefined, lora, cat(bs, 0)), cat(outputs, -1)];
          });
          assertClose(await fused.toArray(), await separate.toArray(), { atol: 0, rtol: 0 }, `${dtype} adapters ${adapted}: fused against the separate ops`);
        });
      }
    }
  } finally {
    setMatmulVariant(null);
  }
});

test('a bias that does not fit the weights is refused, naming what it must be', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  await scoped(async () => {
    const x = tensor(seededValues(16, 1), [1, 16]);
    const ws = [tensor(seededValues(3 * 16, 2), [3, 16]), tensor(seededValues(5 * 16, 3), [5, 16])];
    noGrad(() => {
      assert.throws(() => fusedLinear(x, ws, undefined, undefined, tensor(seededValues(5, 4), [5])), /the bias is \[5\]; it must hold the weights' biases b_i \[N_i\] one after the other, 8 elements/);
      assert.throws(() => fusedLinear(x, ws, undefined, undefined, transpose(tensor(seededValues(8, 4), [2, 4]))), /\(not contiguous\)/);
      if (hasF16()) assert.throws(() => fusedLinear(x, ws, undefined, undefined, tensor(seededValues(8, 4), [8], { dtype: 'f16' })), /x is f32, the bias is f16; they must match/);
    });
  });
});

test('the on-device check refuses a fused kernel that drops the bias or adds it twice, dense or quantized', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  const needle = 'return round_to_t(v + f32(b[p.bias_offset + n]));';
  const cases = [
    ['dropped', 'return v;', /^f32, 1 row, q\/k\/v with the norm and biases: element \d+ is/, false],
    ['twice', 'return round_to_t(round_to_t(v + f32(b[p.bias_offset + n])) + f32(b[p.bias_offset + n]));', /^f32, 1 row, q\/k\/v with the norm and biases: element \d+ is/, false],
    // Only the quantized kernels (their weights read by load_codes) rewritten: the dense ones pass.
    ['dropped-quantized', 'return v;', /^f32, 1 row, int8 q\/k\/v with the norm, adapters on q and v and biases: element \d+ is/, true],
  ] as const;
  for (const [name, replacement, reason, quantizedOnly] of cases) {
    setFusedLinearRewrite({
      name: `bias-${name}`,
      rewrite: (wgsl) => {
        assert.ok(wgsl.includes(needle), 'the rewrite finds the bias epilogue');
        return quantizedOnly && !wgsl.includes('load_codes') ? wgsl : wgsl.replace(needle, replacement);
      },
    });
    try {
      const outcome = await checkFusedLinear();
      assert.equal(outcome.ok, false, `bias ${name}: refused`);
      assert.match(outcome.ok ? '' : outcome.reason, reason);
    } finally {
      setFusedLinearRewrite(null);
    }
  }
});
