// The correctness check a matmul variant passes on the device before the search may time or choose it:
// small awkward products (edges off every tile, transposed operands read in place, batch dims, single
// rows, a bias and an addend (torch.addmm's input) in the epilogue; f32 and f16) against a float64 CPU product, every element compared. A pipeline that cannot be
// created or a device error during the run fails the check too; the reason names the case.
import { encodeMatmul, matmulKernels, type KernelRewrite } from './backend/matmul-encode.js';
import { plan, type Problem } from './backend/matmul-plan.js';
import type { Runtime } from './backend/runtime.js';
import { f16BitsToF32, f32ToF16Bits } from './creation.js';
import type { DeviceInfo } from './backend/device.js';
import { variantName, type MatmulChoice, type MatmulVariant } from './matmul-choice.js';
import type { FloatDType } from './tensor.js';
import { checkValues as values } from './check-values.js';

/**
 * One product of the check: [batch] x [M, K] x [K, N]; `ta`/`tb`: the operand is stored transposed; `bias`:
 * a bias [N] added in the epilogue (linear's), read past an offset; `alpha`: the product (and bias) times
 * alpha added to an addend of c's shape in the epilogue (torch.addmm's, linearAdd's), read past an offset.
 */
export interface CheckCase {
  M: number;
  K: number;
  N: number;
  batch: number;
  ta: boolean;
  tb: boolean;
  bias?: boolean;
  alpha?: number;
}

/** Sizes off the 16/32/64/128 tiles and the vec4 widths, crossing tile and k-step boundaries. */
const GENERAL_CASES: CheckCase[] = [
  { M: 37, K: 44, N: 52, batch: 1, ta: false, tb: false },
  { M: 37, K: 44, N: 52, batch: 1, ta: false, tb: true, bias: true },
  { M: 33, K: 19, N: 35, batch: 1, ta: true, tb: false },
  { M: 20, K: 36, N: 28, batch: 2, ta: false, tb: true, bias: true, alpha: 1 },
  { M: 133, K: 40, N: 140, batch: 1, ta: false, tb: true, bias: true },
  { M: 68, K: 52, N: 36, batch: 1, ta: true, tb: true, alpha: -0.75 },
  { M: 37, K: 44, N: 52, batch: 1, ta: false, tb: true, alpha: 2 },
];
const DECODE_CASES: CheckCase[] = [
  { M: 1, K: 52, N: 44, batch: 1, ta: false, tb: true },
  { M: 1, K: 52, N: 44, batch: 1, ta: false, tb: false, bias: true, alpha: 2 },
  { M: 1, K: 260, N: 132, batch: 2, ta: false, tb: true, bias: true, alpha: 1 },
  // Multiples of 8 (16-byte chunks of f16) with odd N, and K past one pass of the wide kernel.
  { M: 1, K: 136, N: 37, batch: 1, ta: false, tb: true, bias: true },
  { M: 1, K: 1096, N: 13, batch: 2, ta: false, tb: true, alpha: -0.75 },
];

/** Elements before a check case's bias in its buffer. */
const BIAS_OFFSET = 6;
/** Elements before a check case's addend in its buffer. */
const ADDEND_OFFSET = 10;

/** Raise it when the check's comparison changes in a way its cases and kernels do not show (tolerances, reference). */
const CHECK_VERSION = 2;

/**
 * What a passed check depends on, as a hash: the check's version and cases and the complete WGSL of every
 * module the check would compile for `variants` on this adapter. A tuning choice made under another
 * fingerprint was checked against other kernels or cases, so it is not used.
 */
export function checkFingerprint(info: DeviceInfo, variants: readonly MatmulVariant[]): string {
  const hash = new Fnv64();
  hash.add(`check ${CHECK_VERSION} bias offset ${BIAS_OFFSET} addend offset ${ADDEND_OFFSET}`);
  const unused = {} as GPUBuffer;
  const sources = new Set<string>();
  for (const v of variants) {
    const dtypes: FloatDType[] = v.kernel === 'sgmat' ? ['f16'] : info.features.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
    const choice: MatmulChoice = { main: v, fallback: { kernel: 'v1' }, decode: v.kernel === 'matvec' ? v : null };
    const extra: MatmulVariant[] = v.kernel === 'v3' && v.pack === undefined ? [{ ...v, pack: true }] : [];
    hash.add(`${variantName(v)} ${JSON.stringify(casesFor(v))}`);
    for (const dtype of dtypes) {
      for (const variant of [v, ...extra]) {
        for (const c of casesFor(v)) {
          const p = problemOf(c, dtype, unused, unused, unused, c.bias ? unused : null, c.alpha === undefined ? null : unused);
          const pl = plan(p, { ...choice, main: variant }, info.maxStorageBufferBindingSize);
          if (!runsItself(v, pl.kernel) || pl.copyA || pl.copyB) continue;
          for (const s of matmulKernels(p, pl)) sources.add(s.source);
        }
      }
    }
  }
  for (const s of [...sources].sort()) hash.add(s);
  return hash.hex();
}

/** 64-bit FNV-1a over UTF-16 code units, as two 32-bit halves (the same in Node and browsers). */
class Fnv64 {
  private hi = 0xcbf29ce4;
  private lo = 0x84222325;
  add(text: string): void {
    for (let i = 0; i <= text.length; i++) {
      // A separator after each text, so that ("ab", "c") and ("a", "bc") differ.
      this.lo ^= i < text.length ? text.charCodeAt(i) : 0xffff;
      // Multiply by the FNV prime 2^40 + 0x1b3, modulo 2^64.
      const lo = this.lo * 0x1b3;
      const hi = this.hi * 0x1b3 + ((this.lo << 8) >>> 0) + Math.floor(lo / 0x100000000);
      this.lo = lo >>> 0;
      this.hi = hi >>> 0;
    }
  }
  hex(): string {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}

/** The product of a check case over the given buffers (the bias past BIAS_OFFSET, the addend past ADDEND_OFFSET). */
function problemOf(c: CheckCase, dtype: FloatDType, a: GPUBuffer, b: GPUBuffer, out: GPUBuffer, bias: GPUBuffer | null, addend: GPUBuffer | null): Problem {
  const { M, K, N, batch } = c;
  return {
    dtype,
    M,
    N,
    K,
    batchShape: [batch],
    a: { buffer: a, offset: 0, rowStride: c.ta ? 1 : K, colStride: c.ta ? M : 1, batchStrides: [batch > 1 ? M * K : 0] },
    b: { buffer: b, offset: 0, rowStride: c.tb ? 1 : N, colStride: c.tb ? K : 1, batchStrides: [batch > 1 ? K * N : 0] },
    c: out,
    ...(bias === null ? {} : { bias: { buffer: bias, offset: BIAS_OFFSET } }),
    ...(addend === null ? {} : { addend: { buffer: addend, offset: ADDEND_OFFSET, alpha: c.alpha! } }),
  };
}

/** The outcome of a check: passed, or refused with the status and reason the report records. */
export type CheckResult = { ok: true } | { ok: false; status: 'wrong' | 'failed'; reason: string };

/** Logical [batch, R, C] data stored as [batch, C, R] rows (the operand read transposed in place). */
function stored(data: Float32Array, batch: number, R: number, C: number, transposed: boolean): Float32Array {
  if (!transposed) return data;
  const t = new Float32Array(data.length);
  for (let b = 0; b < batch; b++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[b * R * C + c * R + r] = data[b * R * C + r * C + c]!;
  return t;
}

function reference(a: Float32Array, b: Float32Array, bias: Float32Array | null, addend: Float32Array | null, c: CheckCase): Float64Array {
  const out = new Float64Array(c.batch * c.M * c.N);
  for (let z = 0; z < c.batch; z++) {
    for (let m = 0; m < c.M; m++) {
      for (let n = 0; n < c.N; n++) {
        let s = bias === null ? 0 : bias[n]!;
        for (let k = 0; k < c.K; k++) s += a[(z * c.M + m) * c.K + k]! * b[(z * c.K + k) * c.N + n]!;
        const i = (z * c.M + m) * c.N + n;
        out[i] = addend === null ? s : addend[i]! + c.alpha! * s;
      }
    }
  }
  return out;
}

/**
 * Tile-aligned products, which the direct subgroup-matrix kernel runs itself: x W^T, batched with b along
 * n, a read along m, both transposed; several k steps each.
 */
function directCases(v: Extract<MatmulVariant, { kernel: 'sgmat' }>): CheckCase[] {
  return [
    { M: 2 * v.tm, K: 96, N: v.tn, batch: 1, ta: false, tb: true, bias: true },
    { M: v.tm, K: 64, N: 2 * v.tn, batch: 2, ta: false, tb: false },
    { M: v.tm, K: 32, N: v.tn, batch: 1, ta: true, tb: false },
    { M: v.tm, K: 160, N: v.tn, batch: 1, ta: true, tb: true },
  ];
}

/** The cases a variant runs (the plan neither copies nor hands them to a fallback), by dtype. */
function casesFor(v: MatmulVariant): CheckCase[] {
  if (v.kernel === 'matvec') return DECODE_CASES;
  return v.kernel === 'sgmat' && v.direct ? [...GENERAL_CASES, ...directCases(v)] : GENERAL_CASES;
}

/**
 * Whether a plan runs `v` itself: its own kernel, or, for the direct subgroup-matrix kernel, the staged one
 * of the same tiles that runs the products it cannot (checked with it, since choosing one chooses both).
 */
function runsItself(v: MatmulVariant, planned: MatmulVariant): boolean {
  if (variantName(planned) === variantName(v)) return true;
  return v.kernel === 'sgmat' && v.direct === true && variantName(planned) === variantName({ ...v, direct: false });
}

/**
 * Checks one variant on the device in each dtype the adapter runs (f16 only for sgmat): every case it
 * would run is compiled (asynchronously, errors captured), run and compared element by element.
 */
export async function checkVariant(rt: Runtime, v: MatmulVariant, custom?: KernelRewrite): Promise<CheckResult> {
  const dtypes: FloatDType[] = v.kernel === 'sgmat' ? ['f16'] : rt.info.features.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
  const choice: MatmulChoice = { main: v, fallback: { kernel: 'v1' }, decode: v.kernel === 'matvec' ? v : null };
  const extra: MatmulVariant[] = v.kernel === 'v3' && v.pack === undefined ? [{ ...v, pack: true }] : [];
  let ran = 0;
  const kernelsRun = new Set<string>();
  for (const dtype of dtypes) {
    for (const variant of [v, ...extra]) {
      for (const [i, c] of casesFor(v).entries()) {
        const what = `${variantName(variant)} ${dtype} case ${i} (${c.batch > 1 ? `${c.batch} x ` : ''}[${c.M}, ${c.K}]${c.ta ? 'T' : ''} x [${c.K}, ${c.N}]${c.tb ? 'T' : ''}${c.bias ? ' + bias' : ''}${c.alpha === undefined ? '' : `, into an addend times ${c.alpha}`})`;
        const r = await runCase(rt, { ...choice, main: variant }, variant, dtype, c, what, kernelsRun, custom);
        if (r === 'skipped') continue;
        if (!r.ok) return r;
        ran++;
      }
    }
  }
  if (ran === 0 || !kernelsRun.has(variantName(v))) return { ok: false, status: 'failed', reason: `${variantName(v)} runs none of the check's cases` };
  return { ok: true };
}

async function runCase(rt: Runtime, choice: MatmulChoice, v: MatmulVariant, dtype: FloatDType, c: CheckCase, what: string, kernelsRun: Set<string>, custom?: KernelRewrite): Promise<CheckResult | 'skipped'> {
  const { M, K, N, batch } = c;
  const size = dtype === 'f16' ? 2 : 4;
  const ad = values(batch * M * K, 11 + M + K, dtype);
  const bd = values(batch * K * N, 29 + K + N, dtype);
  const upload = (data: Float32Array) => {
    const buf = rt.acquire(Math.max(16, Math.ceil((data.length * size) / 4) * 4));
    rt.write(buf, 0, dtype === 'f16' ? f32ToF16Bits(data) : data);
    return buf;
  };
  const a = upload(stored(ad, batch, M, K, c.ta));
  const b = upload(stored(bd, batch, K, N, c.tb));
  // The bias after BIAS_OFFSET other values, so that a kernel reading it from element 0 fails.
  const biasData = c.bias ? values(N, 47 + N, dtype) : null;
  const bias = biasData === null ? null : upload(Float32Array.of(...values(BIAS_OFFSET, 5, dtype), ...biasData));
  // The addend after ADDEND_OFFSET other values, so that a kernel reading it from element 0 fails.
  const addendData = c.alpha === undefined ? null : values(batch * M * N, 53 + M + N, dtype);
  const addend = addendData === null ? null : upload(Float32Array.of(...values(ADDEND_OFFSET, 7, dtype), ...addendData));
  const out = rt.acquire(Math.max(16, Math.ceil((batch * M * N * size) / 4) * 4));
  // NaN in every element first, so that an element the kernel never writes fails the comparison.
  rt.write(out, 0, dtype === 'f16' ? new Uint16Array(Math.ceil((batch * M * N) / 2) * 2).fill(0x7e00) : new Float32Array(batch * M * N).fill(NaN));
  try {
    const p = problemOf(c, dtype, a, b, out, bias, addend);
    const pl = plan(p, choice, rt.info.maxStorageBufferBindingSize);
    if (!runsItself(v, pl.kernel) || pl.copyA || pl.copyB) return 'skipped';
    kernelsRun.add(variantName(pl.kernel));
    for (const s of matmulKernels(p, pl, custom)) {
      try {
        await rt.kernelChecked(s.key, s.source, s.key);
      } catch (e) {
        return { ok: false, status: 'failed', reason: `${what}: ${(e as Error).message}` };
      }
    }
    rt.device.pushErrorScope('internal');
    rt.device.pushErrorScope('validation');
    encodeMatmul(rt, p, pl, 'matmul check', custom);
    rt.flush();
    const errors = [await rt.device.popErrorScope(), await rt.device.popErrorScope()].filter((e) => e !== null);
    if (errors.length > 0) return { ok: false, status: 'failed', reason: `${what}: ${errors.map((e) => e.message).join('; ')}` };
    const raw = await rt.read(out, 0, batch * M * N * size);
    const got = dtype === 'f16' ? f16BitsToF32(new Uint16Array(raw)) : new Float32Array(raw);
    const want = reference(ad, bd, biasData, addendData, c);
    const atol = dtype === 'f16' ? 2e-3 * Math.sqrt(K) + 1e-2 : 1e-5 * Math.sqrt(K) + 1e-5;
    const rtol = dtype === 'f16' ? 1e-2 : 1e-4;
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i]! - want[i]!) <= atol + rtol * Math.abs(want[i]!))) {
        return { ok: false, status: 'wrong', reason: `${what}: element ${i} is ${got[i]}, the CPU reference ${want[i]!.toPrecision(7)}` };
      }
    }
    return { ok: true };
  } finally {
    for (const buf of [a, b, out, ...(bias === null ? [] : [bias]), ...(addend === null ? [] : [addend])]) rt.release(buf);
  }
}
