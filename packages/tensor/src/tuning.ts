// The per-adapter matmul search: every candidate is first checked against the CPU reference on the
// device (tuning-check.ts) and refused, with its reason, when it computes wrong results or cannot be
// created; the rest are timed on the products of a LLaMA-7B LoRA step and of decoding (scaled down on
// slow adapters to a bounded time) and the fastest are chosen and cached with the report.
import { deviceInfo, getRuntime } from './backend/context.js';
import { encodeMatmul, type KernelRewrite } from './backend/matmul-encode.js';
import { plan, splitFor, splitPartialBound, type Problem } from './backend/matmul-plan.js';
import type { Runtime } from './backend/runtime.js';
import {
  adapterKey,
  currentChoice,
  decodeCandidates,
  lastTuningReport,
  matmulCandidates,
  choiceMade,
  defaultChoice,
  tuningEnabled,
  recordChoice,
  searchInProgress,
  variantName,
  type CandidateReport,
  type MatmulChoice,
  type SplitReport,
  type MatmulTuningReport,
  type MatmulVariant,
} from './matmul-choice.js';
import type { FloatDType } from './tensor.js';
import { checkVariant } from './tuning-check.js';
import { timeDispatches } from './profiler.js';

/** A timed product: [M, K] x [K, N], an operand stored transposed where `ta`/`tb`. */
interface Shape {
  name: string;
  M: number;
  K: number;
  N: number;
  ta: boolean;
  tb: boolean;
}

/** LLaMA-7B: hidden 4096, MLP 11008; a step of 8 x 256 tokens; LoRA rank 8 on a linear layer. */
const [T, H, F, R] = [2048, 4096, 11008, 8];
const TRAIN_SHAPES: Shape[] = [
  { name: 'q/k/v/o', M: T, K: H, N: H, ta: false, tb: true },
  { name: 'gate/up', M: T, K: H, N: F, ta: false, tb: true },
  { name: 'down', M: T, K: F, N: H, ta: false, tb: true },
  { name: 'dx of q/k/v/o', M: T, K: H, N: H, ta: false, tb: false },
  { name: 'LoRA x A^T', M: T, K: H, N: R, ta: false, tb: true },
  { name: 'LoRA h B^T', M: T, K: R, N: H, ta: false, tb: true },
  { name: 'LoRA dA = dh^T x', M: R, K: T, N: H, ta: true, tb: false },
];
const DECODE_SHAPES: Shape[] = [
  { name: 'decode q/k/v/o', M: 1, K: H, N: H, ta: false, tb: true },
  { name: 'decode gate/up', M: 1, K: H, N: F, ta: false, tb: true },
];
/** Default time the timed part of a search may take (HUATUO_MATMUL_TUNE_MS overrides). */
const BUDGET_MS = 4000;
/** The most the timed shapes are scaled down: below 1/16 (128 tokens x 256) they stop resembling the step. */
const MAX_SCALE = 16;
/** Each timed product runs at least this long between syncs (repeated up to MAX_REPEAT times). */
const MIN_TIMED_MS = 2;
const MAX_REPEAT = 32;
/** The rate the scale is picked by comes from a product of at least this many milliseconds, where one fits. */
const PROBE_MS = 1;
/** Products timed by the wall clock since the current evaluation began (no timestamp-query, or a Profiler recording). */
let wallTimed = 0;
/** Workgroups a product that fills few is split along k to fill, where the search finds it faster by SPLIT_GAIN. */
const SPLIT_TARGET = 1024;
const SPLIT_GAIN = 0.9;
const SPLIT_SHAPES = TRAIN_SHAPES.filter((s) => s.name.startsWith('LoRA'));

/** A candidate of {@link checkMatmulCandidates}: a variant, optionally with its WGSL rewritten. */
export interface MatmulCandidate {
  variant: MatmulVariant;
  /** Rewrites the variant's WGSL before compiling (a kernel change to try; a name is then required). */
  rewrite?: KernelRewrite;
}

/** The choice in force for the runtime's adapter (starting the search on first use). */
export function choiceFor(rt: Runtime): MatmulChoice {
  return currentChoice(rt.info, () => search(rt));
}

/**
 * Runs the per-adapter search now (it otherwise starts in the background at the first product) and
 * returns the winner; the result is cached (disk in Node, memory in browsers) under the adapter's name.
 */
export async function tuneMatmul(): Promise<MatmulChoice> {
  const rt = getRuntime();
  return searchInProgress() ?? search(rt);
}

/**
 * The matmul choice for this adapter: the cached one when a search ran before (on disk in Node),
 * else the result of a search run now. Call it after initWebGPU() so that no training step waits on
 * (or shares the GPU with) the first-use search.
 */
export async function readyMatmul(): Promise<MatmulChoice> {
  const rt = getRuntime();
  const choice = choiceFor(rt);
  return (await searchInProgress()) ?? choice;
}

/**
 * What the search behind the current choice checked and measured: each candidate with its status
 * (`ok`, `wrong` or `failed`, and why) and times. Null when no search has run for this adapter.
 * @example console.table(matmulTuningReport()?.candidates.map((c) => [c.name, c.status, c.reason]));
 */
export function matmulTuningReport(): MatmulTuningReport | null {
  return lastTuningReport(getRuntime().info);
}

/**
 * The most bytes of f32 partial products a [batch] x [M, K] x [K, N] product may allocate when split along
 * k on the open device (released once the product is summed): what its matmul choice would split, the
 * bound over every kernel while its search has not decided, and that bound without a device.
 */
export function matmulSplitBytes(M: number, K: number, N: number, batch = 1): number {
  const info = deviceInfo();
  const maxBinding = info?.maxStorageBufferBindingSize ?? Infinity;
  const choice = info === null ? null : (choiceMade(info) ?? (tuningEnabled() ? null : defaultChoice(info)));
  if (choice === null) return splitPartialBound(M, K, N, batch, maxBinding);
  const target = choice.splitK ?? 0;
  const variants = [choice.main, choice.f16, choice.fallback].filter((v) => v !== undefined);
  const p = { M, K, N, batchShape: batch === 1 ? [] : [batch] };
  return Math.max(0, ...variants.map((v) => splitFor(p, v, target, maxBinding)).map((s) => (s > 1 ? s * batch * M * N * 4 : 0)));
}

/** Options of {@link checkMatmulCandidates}. */
export interface CheckOptions {
  /** Time the candidates that pass (default true); false checks correctness only. */
  time?: boolean;
}

/**
 * Checks and times the given candidates as the search would, without changing the adapter's choice or
 * cache: for trying a kernel change on a device, or showing that a wrong kernel is refused.
 */
export async function checkMatmulCandidates(candidates: readonly MatmulCandidate[], options: CheckOptions = {}): Promise<MatmulTuningReport> {
  return evaluate(getRuntime(), candidates, options.time ?? true);
}

async function search(rt: Runtime): Promise<MatmulChoice> {
  const general = matmulCandidates(rt.info).map((variant) => ({ variant }));
  const decode = decodeCandidates(rt.info).map((variant) => ({ variant }));
  const report = await evaluate(rt, [...general, ...decode]);
  recordChoice(rt.info, report);
  return report.choice;
}

async function evaluate(rt: Runtime, candidates: readonly MatmulCandidate[], time = true): Promise<MatmulTuningReport> {
  const reports: CandidateReport[] = [];
  wallTimed = 0;
  for (const c of candidates) {
    const name = variantName(c.variant) + (c.rewrite ? `#${c.rewrite.name}` : '');
    const r = await checkVariant(rt, c.variant, c.rewrite).catch((e: Error) => ({ ok: false as const, status: 'failed' as const, reason: e.message }));
    reports.push(r.ok ? { name, variant: c.variant, status: 'ok' } : { name, variant: c.variant, status: r.status, reason: r.reason });
  }
  const passed = candidates.filter((_, i) => reports[i]!.status === 'ok');
  const scale = time ? await pickScale(rt, passed.length) : 1;
  const decodeAt = decodeScale(rt);
  const f16 = rt.info.features.has('shader-f16');
  for (const [i, c] of candidates.entries()) {
    const rep = reports[i]!;
    if (rep.status !== 'ok' || !time) continue;
    const decode = c.variant.kernel === 'matvec';
    const dtypes: FloatDType[] = c.variant.kernel === 'sgmat' ? ['f16'] : f16 ? ['f32', 'f16'] : ['f32'];
    rep.ms = {};
    for (const dtype of dtypes) {
      const key = decode ? `decode ${dtype}` : dtype;
      rep.ms[key] = await timeShapes(rt, c, decode ? DECODE_SHAPES : TRAIN_SHAPES, decode ? decodeAt : scale, dtype);
    }
  }
  const choice = choose(rt, reports);
  const split = time && passed.length > 0 ? await timeSplit(rt, choice, scale) : null;
  if (split && split.msSplit < split.ms * SPLIT_GAIN) choice.splitK = SPLIT_TARGET;
  return {
    adapter: adapterKey(rt.info),
    measuredAt: new Date().toISOString(),
    shapes: [...TRAIN_SHAPES.map((s) => describe(s, scale)), ...DECODE_SHAPES.map((s) => describe(s, decodeAt))],
    scale,
    timing: wallTimed > 0 || !time ? 'wall-clock' : 'timestamp-query',
    candidates: reports,
    choice,
    ...(split ? { split } : {}),
  };
}

/**
 * Times the LoRA products, whose rank-8 side leaves most of a GPU idle, under the chosen kernels as they
 * are and split along k to fill SPLIT_TARGET workgroups; null when no product would split at this scale.
 */
async function timeSplit(rt: Runtime, choice: MatmulChoice, scale: number): Promise<SplitReport | null> {
  const dtypes: FloatDType[] = rt.info.features.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
  const split = { target: SPLIT_TARGET, happened: false };
  const variantOf = (dtype: FloatDType) => (dtype === 'f16' && choice.f16 ? choice.f16 : choice.main);
  let msSplit = 0;
  for (const dtype of dtypes) msSplit += await timeShapes(rt, { variant: variantOf(dtype) }, SPLIT_SHAPES, scale, dtype, 2, split);
  // Nothing split: the same products were timed, so there is nothing to compare.
  if (!split.happened) return null;
  let ms = 0;
  for (const dtype of dtypes) ms += await timeShapes(rt, { variant: variantOf(dtype) }, SPLIT_SHAPES, scale, dtype);
  return { target: SPLIT_TARGET, ms, msSplit };
}

function describe(s: Shape, scale: number): string {
  const d = scaled(s, scale);
  return `${s.name} [${d.M},${d.K}]${s.ta ? '^T' : ''}x[${d.K},${d.N}]${s.tb ? '^T' : ''}`;
}

/** The fastest correct variants: general (f32 and f16), generic-stride fallback, decode. */
function choose(rt: Runtime, reports: readonly CandidateReport[]): MatmulChoice {
  const ok = reports.filter((r) => r.status === 'ok' && r.ms);
  const best = (list: CandidateReport[], key: string) =>
    list.filter((r) => r.ms![key] !== undefined).sort((x, y) => x.ms![key]! - y.ms![key]!)[0]?.variant;
  const general = ok.filter((r) => r.variant.kernel !== 'matvec');
  const fallbackList = general.filter((r) => r.variant.kernel === 'v1' || r.variant.kernel === 'v2' || r.variant.kernel === 'v4');
  // Nothing passed: the naive kernel, the simplest there is.
  const main = best(general.filter((r) => r.variant.kernel !== 'sgmat'), 'f32') ?? { kernel: 'v1' };
  const fallback = best(fallbackList, 'f32') ?? { kernel: 'v1' };
  const f16 = rt.info.features.has('shader-f16') ? best(general, 'f16') : undefined;
  const decodeList = ok.filter((r) => r.variant.kernel === 'matvec');
  const dtype = rt.info.features.has('shader-f16') ? 'decode f16' : 'decode f32';
  // The lanes-along-k kernel reads only weights stored [N, K]; other layouts take the plain one, so
  // either both passed or single rows use the general kernels.
  const plain = decodeList.some((r) => r.variant.kernel === 'matvec' && r.variant.sg === undefined);
  const decode = plain ? ((best(decodeList, dtype) as MatmulChoice['decode'] | undefined) ?? null) : null;
  const choice: MatmulChoice = { main, fallback, decode };
  if (f16 && variantName(f16) !== variantName(main)) choice.f16 = f16;
  return choice;
}

function scaled(s: Shape, scale: number): Shape {
  const d = (x: number) => (x === R || x === 1 ? x : Math.max(4, Math.round(x / scale / 4) * 4));
  return { ...s, M: d(s.M), K: d(s.K), N: d(s.N) };
}

/** Whether every operand of `shapes` at `scale` fits one binding (f32, the larger dtype). */
function fitsBinding(rt: Runtime, shapes: readonly Shape[], scale: number): boolean {
  return shapes.map((s) => scaled(s, scale)).every((s) => Math.max(s.M * s.K, s.K * s.N, s.M * s.N) * 4 <= rt.info.maxStorageBufferBindingSize);
}

/**
 * The scale decode is timed at: full size where its operands fit one binding. A single row reads the
 * whole weight, so it costs little, and scaled down it would time launch and sync instead of the read.
 */
function decodeScale(rt: Runtime): number {
  let scale = 1;
  while (!fitsBinding(rt, DECODE_SHAPES, scale)) scale *= 2;
  return scale;
}

/**
 * The power of two every dimension is divided by so that timing `n` candidates (three runs of every
 * shape in each dtype) fits the budget at the rate of a first measured product (down to 1 / MAX_SCALE),
 * and every operand fits one binding.
 */
async function pickScale(rt: Runtime, n: number): Promise<number> {
  if (n === 0) return 1;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const budget = Number(env?.HUATUO_MATMUL_TUNE_MS ?? BUDGET_MS);
  // A product too small to fill the device would understate its rate: grow it until it takes PROBE_MS.
  let probe: Shape = { name: 'probe', M: 256, K: 512, N: 512, ta: false, tb: false };
  let msProbe = await timeShapes(rt, { variant: { kernel: 'v2', tile: 32 } }, [probe], 1, 'f32', 2);
  while (msProbe < PROBE_MS && probe.M < T) {
    probe = { ...probe, M: 2 * probe.M, K: 2 * probe.K, N: 2 * probe.N };
    if (!fitsBinding(rt, [probe], 1)) break;
    msProbe = await timeShapes(rt, { variant: { kernel: 'v2', tile: 32 } }, [probe], 1, 'f32', 2);
  }
  const rate = (2 * probe.M * probe.K * probe.N) / Math.max(msProbe, 1e-3);
  const dtypes = rt.info.features.has('shader-f16') ? 2 : 1;
  const flops = (scale: number) => TRAIN_SHAPES.map((s) => scaled(s, scale)).reduce((t, s) => t + 2 * s.M * s.K * s.N, 0);
  let scale = 1;
  while (!fitsBinding(rt, TRAIN_SHAPES, scale) || (scale < MAX_SCALE && (3 * n * dtypes * flops(scale)) / rate > budget)) scale *= 2;
  return scale;
}

/**
 * Milliseconds of one run of every shape (the fastest of `reps` after a warm-up run; a short product is
 * run several times between syncs and the time divided): the GPU time of its dispatches by timestamp
 * queries where the adapter has them (host encoding and the sync's latency left out, which on a GPU are
 * as long as a product), else the wall time to the end of the GPU work. An operand the variant would
 * copy first is timed in the copied layout (the plan copies only when that is cheap).
 */
async function timeShapes(rt: Runtime, c: MatmulCandidate, shapes: readonly Shape[], scale: number, dtype: FloatDType, reps = 2, split?: { target: number; happened: boolean }): Promise<number> {
  const dims = shapes.map((s) => scaled(s, scale));
  const size = dtype === 'f16' ? 2 : 4;
  const bytes = (f: (s: Shape) => number) => Math.max(16, ...dims.map((s) => Math.ceil((f(s) * size) / 4) * 4));
  const a = rt.acquire(bytes((s) => s.M * s.K));
  const b = rt.acquire(bytes((s) => s.K * s.N));
  const out = rt.acquire(bytes((s) => s.M * s.N));
  const choice: MatmulChoice = { main: c.variant, fallback: { kernel: 'v2', tile: 32 }, decode: c.variant.kernel === 'matvec' ? c.variant : null, splitK: split?.target ?? 0 };
  try {
    const problems = dims.map((s) => {
      const make = (ta: boolean, tb: boolean): Problem => ({
        dtype,
        M: s.M,
        N: s.N,
        K: s.K,
        batchShape: [1],
        a: { buffer: a, offset: 0, rowStride: ta ? 1 : s.K, colStride: ta ? s.M : 1, batchStrides: [0] },
        b: { buffer: b, offset: 0, rowStride: tb ? 1 : s.N, colStride: tb ? s.K : 1, batchStrides: [0] },
        c: out,
      });
      const first = plan(make(s.ta, s.tb), choice, rt.info.maxStorageBufferBindingSize);
      const p = make(s.ta && !first.copyA, s.tb && !first.copyB);
      const pl = plan(p, choice, rt.info.maxStorageBufferBindingSize);
      if (split && pl.splitK > 1) split.happened = true;
      return { p, pl };
    });
    const rewrite = (pl: (typeof problems)[number]['pl']) => (variantName(pl.kernel) === variantName(c.variant) ? c.rewrite : undefined);
    // Each product is encoded `repeat` times before one sync: set after the first timed run so that a
    // product of a few microseconds (a GPU) is timed over at least MIN_TIMED_MS, not by its sync.
    let repeat = 1;
    let best = Infinity;
    for (let r = 0; r <= reps; r++) {
      let total = 0;
      for (const { p, pl } of problems) {
        const t0 = performance.now();
        const gpuMs = await timeDispatches(rt, () => {
          for (let k = 0; k < repeat; k++) encodeMatmul(rt, p, pl, 'matmul tuning', rewrite(pl));
        });
        if (gpuMs === null) wallTimed++;
        total += (gpuMs ?? performance.now() - t0) / repeat;
      }
      if (r > 0 || reps === 0) best = Math.min(best, total);
      if (r === 1) repeat = Math.min(MAX_REPEAT, Math.max(1, Math.ceil(MIN_TIMED_MS / Math.max(total / problems.length, 1e-3))));
    }
    return best;
  } finally {
    for (const buf of [a, b, out]) rt.release(buf);
  }
}
