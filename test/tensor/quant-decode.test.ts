// Decoding's quantized products (1 to 4 rows of x): the matrix-vector kernels and the tiled ones, each
// forced, against the CPU reference on awkward shapes (NF4 blocks straddling rows, K off a lane pass, N off
// the rows a subgroup owns); NF4 decoding in one dispatch; and the two paths agreeing with each other.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import fc from 'fast-check';
import {
  QuantizedWeight,
  dequantizeHost,
  f16BitsToF32,
  f32ToF16Bits,
  hasF16,
  noGrad,
  quantizeHost,
  quantizedMatmul,
  runtimeStats,
  setMatmulVariant,
  deviceInfo,
  tensor,
  type FloatDType,
  type QuantFormat,
} from '@huatuo/tensor';
import { checkQuantizedDecode, getRuntime, quantizedDecodeRefusals, setQuantizedDecode, type Nf4Table, type QuantizedDecodePath } from '@huatuo/tensor/internal';
import { gpu, seededValues } from './helpers.js';

await gpu();
after(() => {
  setQuantizedDecode(null);
  setMatmulVariant(null);
});
const dtypes: FloatDType[] = hasF16() ? ['f32', 'f16'] : ['f32'];
const formats: QuantFormat[] = ['int8', 'nf4'];
const paths: QuantizedDecodePath[] = ['matvec', 'tiled'];
const exact = (v: Float32Array, dtype: FloatDType) => (dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(v)) : v);

/** y [M, R] = x [M, C] W^T in f64 from the dequantized weight, and sum |x w| per entry (the error scale). */
function reference(x: Float32Array, w: Float32Array, M: number, R: number, C: number): { y: Float64Array; mag: Float64Array } {
  const y = new Float64Array(M * R);
  const mag = new Float64Array(M * R);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < R; n++) {
      let [s, t] = [0, 0];
      for (let k = 0; k < C; k++) {
        const p = x[m * C + k]! * w[n * C + k]!;
        s += p;
        t += Math.abs(p);
      }
      y[m * R + n] = s;
      mag[m * R + n] = t;
    }
  }
  return { y, mag };
}

/** The tiled kernel's bound (test/kernels/quantized-matmul.test.ts): f32 sums, one f16 rounding. */
function check(got: ArrayLike<number>, ref: { y: Float64Array; mag: Float64Array }, dtype: FloatDType, what: string): void {
  const rel = dtype === 'f16' ? 2 ** -11 : 0;
  for (let i = 0; i < ref.y.length; i++) {
    const bound = 2e-6 * ref.mag[i]! + rel * Math.abs(ref.y[i]!) + 1e-7;
    if (!(Math.abs(got[i]! - ref.y[i]!) <= bound)) assert.fail(`${what}: first mismatch at ${i}: got ${got[i]}, expected ${ref.y[i]} (bound ${bound})`);
  }
}

// M: decoding's one row, and several (each M is a pipeline of its own: few, as lavapipe compiles slowly).
// C off 16 and 32 (rows share chunks; NF4 blocks straddle rows), and past one pass of 8 lanes x 4 chunks;
// R: a few subgroups' rows (2 each), and odd numbers of them.
const sizes = fc.record({
  M: fc.constantFrom(1, 3),
  R: fc.constantFrom(4, 12, 20, 36, 68, 100),
  C: fc.constantFrom(4, 20, 36, 64, 100, 516, 1060),
  biased: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e9 }),
});

for (const path of paths) {
  for (const format of formats) {
    for (const dtype of dtypes) {
      test(`${path} decode kernel, ${format} weight, ${dtype} x: x W^T (+ b) for 1 and 3 rows matches the reference on the dequantized weight`, async () => {
        setQuantizedDecode(path);
        await fc.assert(
          fc.asyncProperty(sizes, async ({ M, R, C, biased, seed }) => {
            const q = quantizeHost(seededValues(R * C, seed, 0.5), R, C, format);
            const w = QuantizedWeight.upload(q);
            const x = exact(seededValues(M * C, seed + 1), dtype);
            // The bias at element 2 of its buffer.
            const bs = exact(seededValues(R + 2, seed + 2), dtype);
            const b = biased ? tensor(bs, [R + 2], { dtype }).slice(0, 2, R + 2) : undefined;
            const y = noGrad(() => quantizedMatmul(tensor(x, [M, C], { dtype }), w, b));
            assert.deepEqual(y.shape, [M, R]);
            const ref = reference(x, dequantizeHost(q), M, R, C);
            if (biased) for (let i = 0; i < ref.y.length; i++) ref.y[i]! += bs[2 + (i % R)]!;
            check(await y.toArray(), ref, dtype, `${path} ${format} ${dtype} M=${M} W=[${R}, ${C}]${biased ? ' biased' : ''} seed=${seed}`);
            y.dispose();
            w.dispose();
          }),
          { numRuns: 8 },
        );
      });
    }
  }
}

test('both kernels add an f16 bias to the f32 sum before the one rounding (2049 + 1 is 2050, not 2048)', async () => {
  if (!hasF16()) return;
  // Rows [1, 1, 0, ...] that dequantize to exactly 1 (K = 128: every NF4 block's absmax is 1 or 0).
  const [N, K] = [36, 128];
  const wd = new Float32Array(N * K);
  for (let n = 0; n < N; n++) [wd[n * K], wd[n * K + 1]] = [1, 1];
  for (const format of formats) {
    const q = quantizeHost(wd, N, K, format);
    assert.ok(dequantizeHost(q).every((v, i) => v === wd[i]), `${format}: the weight dequantizes exactly`);
    const w = QuantizedWeight.upload(q);
    for (const path of paths) {
      setQuantizedDecode(path);
      for (const M of [1, 3]) {
        const xd = new Float32Array(M * K);
        for (let m = 0; m < M; m++) [xd[m * K], xd[m * K + 1]] = [2048, 1];
        const x = tensor(xd, [M, K], { dtype: 'f16' });
        const bias = tensor(new Float32Array(N).fill(1), [N], { dtype: 'f16' });
        const got = await noGrad(() => quantizedMatmul(x, w, bias)).toArray();
        assert.ok(got.every((v) => v === 2050), `${path} ${format} M=${M}: ${[...new Set(got)].join(', ')}, expected 2050 everywhere`);
      }
    }
    w.dispose();
  }
  assert.deepEqual(quantizedDecodeRefusals(getRuntime()), []);
});

test('both kernels read x from a view at an offset', async () => {
  const [R, C] = [12, 40];
  const q = quantizeHost(seededValues(R * C, 5, 0.5), R, C, 'nf4');
  const w = QuantizedWeight.upload(q);
  const all = seededValues(3 * C, 6);
  for (const path of paths) {
    setQuantizedDecode(path);
    const y = noGrad(() => quantizedMatmul(tensor(all, [3, C]).slice(0, 2, 3), w)); // the last row, at offset 2 C
    check(await y.toArray(), reference(all.subarray(2 * C), dequantizeHost(q), 1, R, C), 'f32', `${path}: x at an offset`);
  }
  w.dispose();
});

test('NF4 decoding is one dispatch on the matrix-vector path (absmaxes decoded in place) and agrees with the tiled kernel', async () => {
  const [R, C] = [44, 200];
  const q = quantizeHost(seededValues(R * C, 9, 0.5), R, C, 'nf4');
  const w = QuantizedWeight.upload(q);
  const xs = seededValues(C, 10);
  const x = tensor(xs, [1, C]);
  const run = (path: QuantizedDecodePath, table: Nf4Table | null = null) => {
    setQuantizedDecode(path, table);
    const before = runtimeStats().dispatches;
    const y = noGrad(() => quantizedMatmul(x, w));
    return { y, dispatches: runtimeStats().dispatches - before };
  };
  const tiled = run('tiled');
  assert.equal(tiled.dispatches, 2, 'the tiled path decodes the absmaxes first');
  const want = await tiled.y.toArray();
  const ref = reference(xs, dequantizeHost(q), 1, R, C);
  // Both places of the code table: the CPU adapter's default (constant) and the GPUs' (workgroup memory).
  for (const table of ['constant', 'workgroup'] as const) {
    const matvec = run('matvec', table);
    assert.equal(matvec.dispatches, 1, `${table} table: the matrix-vector path must decode the absmaxes inside its one dispatch`);
    const got = await matvec.y.toArray();
    for (let i = 0; i < want.length; i++) {
      const bound = 4e-6 * ref.mag[i]! + 1e-7;
      assert.ok(Math.abs(got[i]! - want[i]!) <= bound, `${table} table, element ${i}: matvec ${got[i]}, tiled ${want[i]} (bound ${bound})`);
    }
  }
  assert.deepEqual(quantizedDecodeRefusals(getRuntime()), []);
  w.dispose();
});

test('the matrix-vector kernels run where the matmul choice decodes with matvec.v3, and its workgroups past N are skipped', async () => {
  setQuantizedDecode(null);
  const sg = deviceInfo()!.subgroupMinSize;
  const [R, C] = [36, 72]; // 36 rows: 4 subgroups of 2 rows a workgroup leave 4 past N in the last one
  const q = quantizeHost(seededValues(R * C, 11, 0.5), R, C, 'nf4');
  const w = QuantizedWeight.upload(q);
  const xs = seededValues(C, 12);
  const x = tensor(xs, [1, C]);
  const dispatches = () => {
    const before = runtimeStats().dispatches;
    const y = noGrad(() => quantizedMatmul(x, w));
    return { y, n: runtimeStats().dispatches - before };
  };
  try {
    setMatmulVariant({ kernel: 'matvec', sg, wide: true, groups: 4 });
    const wide = dispatches();
    assert.equal(wide.n, 1, 'a wide subgroup decode choice runs the one-dispatch matrix-vector kernel');
    check(await wide.y.toArray(), reference(xs, dequantizeHost(q), 1, R, C), 'f32', 'wide, 4 groups');
    setMatmulVariant({ kernel: 'matvec', sg });
    assert.equal(dispatches().n, 2, 'a decode choice other than matvec.v3 keeps the tiled kernel');
  } finally {
    setMatmulVariant(null);
    w.dispose();
  }
});

test('the on-device check GPUs run before decoding with a matrix-vector variant passes here for both formats and dtypes, with a bias and without', async () => {
  for (const format of formats) {
    for (const dtype of dtypes) {
      for (const biased of [false, true]) assert.equal(await checkQuantizedDecode(format, dtype, 1, biased), null, `${format} ${dtype}${biased ? ' biased' : ''}`);
    }
  }
});
