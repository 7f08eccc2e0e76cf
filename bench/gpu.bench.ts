// GPU-sized rows beside PyTorch on the same GPU: matmul at the LLaMA-7B training products and 4096^3 in f16 and
// f32; a LoRA step at LLaMA-7B dimensions (batch 8 x 256 tokens, f16 base) with 2 and 4 layers, extrapolated to
// 32 and labelled so; greedy decode at 2 and 4 layers; the rank-8 LoRA products as tuned, unsplit and split
// along k. PyTorch (+ transformers and PEFT) runs each item in a worker process (bench/torch_step.py --mode
// serve) right after ours, so a row of either is recorded the moment it is measured.
// `runAcceptance` (bench/run.ts --acceptance) runs the same items in priority order inside a time budget, then
// the test suite, the per-kernel report and decode variants while time is left, writing every row to its
// folder as it comes; `--small` runs the same code at toy sizes on any adapter (lavapipe).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AdamW, clipGradNorm, deviceInfo, profile, readyAttention, readyMatmul, startScope, tensor, variantName, type FloatDType, type Tensor } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, generate, type LlamaConfig } from '@huatuo/llama';
import type { BenchContext } from './kernels.bench.js';
import { benchLoraProducts, benchMatmul, loraProducts, type Shape } from './matmul.bench.js';
import { acceptanceSummary, extrapolateLayers, RowStream, type AcceptanceRow } from './report.js';
import { measureRoofline } from './roofline.js';
import { timeMedian } from './timing.js';
import { tokenIds } from './train.bench.js';

/** The Python that runs bench/torch_step.py: HUATUO_PYTHON, else `python3` on the PATH. */
const PYTHON = process.env.HUATUO_PYTHON ?? 'python3';
const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const script = join(benchDir, 'torch_step.py');
const GiB = 1 << 30;

/** The sizes a run measures at, and how long each of its items is expected to take (seconds, for the budget). */
export interface Scale {
  name: 'gpu' | 'small';
  /** Model name in the rows: llama-7b, or tiny at the small scale. */
  model: string;
  config: (layers: number) => LlamaConfig;
  shapes: Shape[];
  batch: number;
  seq: number;
  /** Tokens timed per decode: generating 1 + tokens minus generating 1, over tokens. */
  decodeTokens: number;
  torchDevice: 'cuda' | 'cpu';
  estimate: {
    matmul: number;
    torchMatmul: number;
    step: (layers: number) => number;
    torchStep: (layers: number) => number;
    decode: (layers: number) => number;
    torchDecode: (layers: number) => number;
    /** The least time worth starting the test suite with. */
    tests: number;
    report: number;
    variant: number;
    /** Waiting for the PyTorch worker's imports (overlaps the matmul search). */
    torchReady: number;
  };
}

/**
 * LLaMA-7B's shapes. Estimates from the H200 runs of 2026-12-04 (a 2-layer step's setup and timing took
 * about 20 s, PyTorch's imports about 10 s) with room to spare; items past them still run while the budget
 * lasts, and the budget's end stops the run with every row written.
 */
export const GPU_SCALE: Scale = {
  name: 'gpu',
  model: 'llama-7b',
  config: (layers) => configFromPreset('llama-7b', { numHiddenLayers: layers }),
  shapes: [
    { M: 2048, K: 4096, N: 4096, name: '2048x4096x4096' },
    { M: 2048, K: 4096, N: 11008, name: '2048x4096x11008' },
    { M: 2048, K: 11008, N: 4096, name: '2048x11008x4096' },
    { M: 4096, K: 4096, N: 4096, name: '4096x4096x4096' },
  ],
  batch: 8,
  seq: 256,
  decodeTokens: 32,
  torchDevice: 'cuda',
  estimate: {
    matmul: 4,
    torchMatmul: 3,
    step: (l) => 15 + 3 * l,
    torchStep: (l) => 8 + 0.5 * l,
    decode: (l) => 8 + 2 * l,
    torchDecode: (l) => 8 + 1.2 * l,
    tests: 60,
    report: 150,
    variant: 25,
    torchReady: 60,
  },
};

/** The same items at toy sizes (LLaMA's shapes divided by 8, the tiny preset), for adapters that bind less than 1 GiB. */
export const SMALL_SCALE: Scale = {
  name: 'small',
  model: 'tiny',
  config: (layers) => configFromPreset('tiny', { numHiddenLayers: layers }),
  shapes: GPU_SCALE.shapes.map((s) => ({ M: s.M / 8, K: Math.ceil(s.K / 8), N: Math.ceil(s.N / 8), name: `${s.M / 8}x${Math.ceil(s.K / 8)}x${Math.ceil(s.N / 8)}` })),
  batch: 2,
  seq: 32,
  decodeTokens: 8,
  torchDevice: 'cpu',
  estimate: {
    matmul: 1,
    torchMatmul: 1,
    step: (l) => 2 + l,
    torchStep: (l) => 5 + l,
    decode: (l) => 2 + l,
    torchDecode: (l) => 5 + l,
    tests: 120,
    report: 60,
    variant: 15,
    torchReady: 30,
  },
};

/** Bytes of weights one decoded token reads at `bytes` a weight: every layer's projections and lm_head. */
export function decodeWeightBytes(c: LlamaConfig, bytes: number): number {
  const D = c.headDim ?? c.hiddenSize / c.numAttentionHeads;
  const C = c.hiddenSize;
  const attention = C * c.numAttentionHeads * D * 2 + C * c.numKeyValueHeads * D * 2; // q, o; k, v
  const mlp = 3 * C * c.intermediateSize;
  return (c.numHiddenLayers * (attention + mlp) + c.vocabSize * C) * bytes;
}

/** One line of bench/torch_step.py's suite or serve output: an item's result, its failure, or the worker's first line. */
export interface TorchLine {
  item?: string;
  ready?: boolean;
  error?: string;
  hf?: boolean;
  hf_error?: string;
  device?: string;
  gpu?: string;
  torch?: string;
  [key: string]: string | number | boolean | undefined;
}

/** A line of torch_step.py's output as a TorchLine; null for anything else (a warning, a half line). */
export function parseTorchLine(line: string): TorchLine | null {
  const t = line.trim();
  if (!t.startsWith('{')) return null;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as TorchLine;
  return typeof o.item === 'string' || typeof o.ready === 'boolean' ? o : null;
}

/**
 * The row of one of torch_step.py's item lines, named as the matching huatuo row (same section, shape,
 * layers) so that the summary pairs them; null for a line that failed or is no item.
 */
export function torchRow(line: TorchLine, scale: Scale, adapter: string): AcceptanceRow | null {
  if (line.item === undefined || line.error !== undefined) return null;
  const [kind, a, b] = line.item.split(' ');
  const impl = `pytorch-${line.device ?? scale.torchDevice}`;
  const where = `${line.gpu ?? line.device ?? ''}; torch ${line.torch ?? '?'}`;
  const num = (k: string) => Number(line[k]);
  if (kind === 'matmul' && a !== undefined && b !== undefined) {
    const [M, K, N] = b.split(',').map(Number);
    return { section: 'matmul', bench: 'matmul', impl, dtype: a, shape: `${M}x${K}x${N}`, ms: num('ms'), gflops: num('tflops') * 1000, gbps: null, adapter, note: `${where}${line.device === 'cuda' ? '; TF32 off' : ''}` };
  }
  const layers = Number(a);
  if (kind === 'step') {
    const peak = line.peak_gib === undefined ? '' : `; peak ${num('peak_gib').toFixed(1)} GiB`;
    return { section: 'lora', bench: `${scale.model} LoRA step`, impl, dtype: 'f16', shape: `L${layers} B${scale.batch} T${scale.seq}`, ms: num('ms_per_step'), gflops: null, gbps: null, adapter, layers, tokens: scale.batch * scale.seq, note: `transformers + PEFT; ${num('tokens_per_s').toFixed(0)} tokens/s${peak}; ${where}` };
  }
  if (kind === 'decode') {
    return { section: 'decode', bench: `${scale.model} greedy decode`, impl, dtype: 'f16', shape: `L${layers} B1`, ms: num('ms_per_token'), gflops: null, gbps: null, adapter, layers, weightBytes: decodeWeightBytes(scale.config(layers), 2), note: `transformers generate; ${where}` };
  }
  return null;
}

/** What the worker said first: whether it runs, and whether transformers + PEFT import (the step and decode items need them). */
export type TorchReady = { ok: true; hf: boolean; why: string; line: TorchLine } | { ok: false; why: string };

/**
 * bench/torch_step.py --mode serve as a worker process: items go in one a line, each result line comes back
 * as soon as the item is measured. Started early, its imports overlap the caller's own setup.
 */
export class TorchWorker {
  private readonly child: ChildProcess;
  private readonly queue: TorchLine[] = [];
  private waiter: (() => void) | null = null;
  private exited: string | null = null;
  private readonly stderr: string[] = [];
  private readyLine: Promise<TorchReady> | null = null;

  constructor(python: string, args: string[]) {
    this.child = spawn(python, [script, '--mode', 'serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    this.child.on('error', (e) => this.end(`${python}: ${e.message}`));
    this.child.on('exit', (code, signal) => {
      // The error's own line (a Python traceback ends with it), else the last lines.
      const error = [...this.stderr].reverse().find((l) => /Error\b/.test(l)) ?? this.stderr.slice(-3).join(' | ');
      this.end(`exited (${signal ?? `code ${code}`})${error ? `: ${error}` : ''}`);
    });
    this.child.stdin!.on('error', () => undefined);
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const parsed = parseTorchLine(l);
      if (parsed === null) return;
      this.queue.push(parsed);
      this.wake();
    });
    createInterface({ input: this.child.stderr! }).on('line', (l) => {
      if (l.trim() === '') return;
      this.stderr.push(l.trim());
      if (this.stderr.length > 20) this.stderr.shift();
    });
  }

  private end(why: string): void {
    this.exited ??= why;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** The next line, or null once the worker has exited or `ms` passed. */
  private async next(ms: number): Promise<TorchLine | null> {
    const until = performance.now() + ms;
    while (this.queue.length === 0) {
      if (this.exited !== null || performance.now() >= until) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, until - performance.now()));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.queue.shift()!;
  }

  /** Waits (at most `ms` the first time) for the worker's first line. */
  ready(ms: number): Promise<TorchReady> {
    this.readyLine ??= (async (): Promise<TorchReady> => {
      const line = await this.next(ms);
      if (line === null) {
        const why = this.exited ?? `no answer in ${(ms / 1000).toFixed(0)} s`;
        this.close();
        return { ok: false, why: `the PyTorch worker ${why}` };
      }
      if (line.ready !== true) return { ok: false, why: line.error ?? 'the PyTorch worker did not start' };
      return { ok: true, hf: line.hf === true, why: line.hf_error ?? '', line };
    })();
    return this.readyLine;
  }

  /** Runs one item; its line, or one with `error` when it failed, the worker is gone or `ms` passed (the worker is then stopped). */
  async run(item: string, ms: number): Promise<TorchLine> {
    if (this.exited !== null) return { item, error: `the PyTorch worker ${this.exited}` };
    this.child.stdin!.write(`${item}\n`);
    const until = performance.now() + ms;
    for (;;) {
      const line = await this.next(until - performance.now());
      if (line === null) {
        const why = this.exited ?? `no answer in ${(ms / 1000).toFixed(0)} s; the PyTorch worker was stopped`;
        this.close();
        return { item, error: why };
      }
      if (line.item === item) return line;
    }
  }

  /** Stops the worker (its GPU memory is freed with it). */
  close(): void {
    if (this.exited === null) this.child.kill('SIGKILL');
    this.end('was stopped');
  }
}

/** The worker's arguments for a scale: the model's dimensions as torch_step.py takes them. */
function torchArgs(scale: Scale): string[] {
  const c = scale.config(2);
  return ['--device', scale.torchDevice, '--dim', c.hiddenSize, '--heads', c.numAttentionHeads, '--kv-heads', c.numKeyValueHeads, '--inter', c.intermediateSize,
    '--vocab', c.vocabSize, '--seq', scale.seq, '--batch', scale.batch, '--steps', 5].map(String);
}

/** Seconds left of a budget that began when the process started (performance.now() 0). */
export class Budget {
  constructor(readonly totalS: number) {}
  leftS(): number {
    return this.totalS - performance.now() / 1000;
  }
  fits(s: number): boolean {
    return this.leftS() >= s;
  }
}

/** Where the measuring items send rows and notes, and the budget they fit into. */
interface Run {
  scale: Scale;
  adapter: string;
  budget: Budget;
  record: (r: AcceptanceRow) => void;
  /** A line for the sections' notes (what was skipped or failed, and why). */
  note: (text: string) => void;
  /** A line for the terminal only. */
  log: (text: string) => void;
  /** The PyTorch worker, or null where PyTorch is off. */
  torch: TorchWorker | null;
  /** Said once: why PyTorch's rows are missing. */
  torchSkipped: Set<string>;
  /** Every row recorded so far. */
  rows: AcceptanceRow[];
}

/** Runs our item when its estimate fits the budget, else notes it skipped; a failure is noted and the run goes on. */
async function ours(run: Run, name: string, estimateS: number, fn: () => Promise<void>): Promise<void> {
  if (!run.budget.fits(estimateS)) {
    run.note(`${name}: skipped (needs ~${estimateS.toFixed(0)} s, ${Math.max(0, run.budget.leftS()).toFixed(0)} s left of the ${run.budget.totalS} s budget)`);
    return;
  }
  try {
    await fn();
  } catch (e) {
    run.note(`${name}: failed: ${((e as Error).stack ?? String(e)).split('\n').slice(0, 3).join(' | ')}`);
  }
}

/** Runs a PyTorch item on the worker when it is there and the item fits, recording its row the moment its line comes. */
async function theirs(run: Run, item: string, estimateS: number): Promise<void> {
  const once = (why: string) => {
    if (!run.torchSkipped.has(why)) run.note(why);
    run.torchSkipped.add(why);
  };
  if (run.torch === null) return once('PyTorch: off (--no-torch); no PyTorch rows');
  const ready = await run.torch.ready(run.scale.estimate.torchReady * 1000);
  if (!ready.ok) return once(`PyTorch: skipped (${ready.why})`);
  once(`PyTorch: torch ${ready.line.torch} on ${ready.line.gpu ?? ready.line.device} (${PYTHON}); transformers + PEFT ${ready.hf ? 'import' : 'do not import'}`);
  if (!item.startsWith('matmul') && !ready.hf) return once(`PyTorch LoRA step and generate: skipped (transformers + PEFT do not import under ${PYTHON}: ${ready.why})`);
  if (!run.budget.fits(estimateS)) {
    run.note(`PyTorch ${item}: skipped (needs ~${estimateS.toFixed(0)} s, ${Math.max(0, run.budget.leftS()).toFixed(0)} s left of the ${run.budget.totalS} s budget)`);
    return;
  }
  // A stuck item may not take the rest of the budget: the worker is stopped past 4 times its estimate.
  const line = await run.torch.run(item, Math.max(1, Math.min(run.budget.leftS(), Math.max(60, 4 * estimateS))) * 1000);
  const row = torchRow(line, run.scale, run.adapter);
  if (row === null) run.note(`PyTorch ${item}: failed: ${line.error ?? 'no row in its line'}`);
  else run.record(row);
}

/** Matmul at the scale's four shapes, f16 (where the adapter has it) then f32, each of ours followed by PyTorch's. */
async function matmulSection(run: Run): Promise<void> {
  const f16 = deviceInfo()!.features.has('shader-f16');
  if (!f16) run.note('matmul f16: skipped (the adapter has no shader-f16)');
  for (const dtype of (f16 ? ['f16', 'f32'] : ['f32']) as FloatDType[]) {
    for (const s of run.scale.shapes) {
      await ours(run, `matmul ${dtype} ${s.name}`, run.scale.estimate.matmul, async () => {
        const m = await benchMatmul(s, dtype, 3);
        if (!m) return run.note(`matmul ${dtype} ${s.name}: skipped (no kernel runs it on this adapter)`);
        const gflops = (2 * s.M * s.K * s.N) / m.ms / 1e6;
        run.record({ section: 'matmul', bench: 'matmul', impl: 'huatuo', dtype, shape: s.name, ms: m.ms, gflops, gbps: null, adapter: run.adapter, ...(m.note ? { note: m.note } : {}) });
      });
      await theirs(run, `matmul ${dtype} ${s.M},${s.K},${s.N}`, run.scale.estimate.torchMatmul);
    }
  }
}

/** After the 2- and 4-layer rows of ours: the 32-layer figure, labelled extrapolated. */
function recordExtrapolated(run: Run, section: 'lora' | 'decode'): void {
  const rows = run.rows.filter((r) => r.section === section && r.impl === 'huatuo' && !r.extrapolated);
  const r2 = rows.find((r) => r.layers === 2);
  const r4 = rows.find((r) => r.layers === 4);
  if (!r2 || !r4) return;
  const ms = extrapolateLayers(r2.ms, r4.ms, 32);
  const perLayer = `${((r4.ms - r2.ms) / 2).toFixed(section === 'lora' ? 1 : 2)} ms a layer`;
  const rate = section === 'lora' ? `${(((r4.tokens ?? 0) * 1000) / ms).toFixed(0)} tokens/s` : `${(1000 / ms).toFixed(0)} tokens/s`;
  const shape = r4.shape.replace(/^L4/, 'L32') + ' (extrapolated)';
  const weightBytes = r2.weightBytes !== undefined && r4.weightBytes !== undefined ? { weightBytes: r2.weightBytes + 15 * (r4.weightBytes - r2.weightBytes) } : {};
  run.record({ ...r4, ...weightBytes, shape, ms, layers: 32, extrapolated: true, note: `extrapolated from 2 and 4 layers: ${perLayer}; ${rate}` });
}

/** LoRA steps at 2 and 4 layers, ours then PyTorch + PEFT's; the 32-layer extrapolation; PyTorch at 32 layers. */
async function loraSection(run: Run): Promise<void> {
  const { scale } = run;
  for (const layers of [2, 4]) {
    await ours(run, `LoRA step L${layers}`, scale.estimate.step(layers), async () => {
      const r = await loraStep(scale.config(layers), scale.batch, scale.seq, run.log);
      run.record({ section: 'lora', bench: `${scale.model} LoRA step`, impl: 'huatuo', dtype: 'f16', shape: `L${layers} B${scale.batch} T${scale.seq}`, ms: r.ms, gflops: null, gbps: null, adapter: run.adapter, layers, tokens: scale.batch * scale.seq, note: r.note });
    });
    await theirs(run, `step ${layers}`, scale.estimate.torchStep(layers));
  }
  recordExtrapolated(run, 'lora');
  await theirs(run, 'step 32', scale.estimate.torchStep(32));
}

/** Greedy decoding at 2 and 4 layers, ours then transformers generate; the 32-layer extrapolation; generate at 32 layers. */
async function decodeSection(run: Run): Promise<void> {
  const { scale } = run;
  for (const layers of [2, 4]) {
    await ours(run, `greedy decode L${layers}`, scale.estimate.decode(layers), async () => {
      const config = scale.config(layers);
      const ms = await decodeStep(config, scale.decodeTokens);
      run.record({ section: 'decode', bench: `${scale.model} greedy decode`, impl: 'huatuo', dtype: 'f16', shape: `L${layers} B1`, ms, gflops: null, gbps: null, adapter: run.adapter, layers, weightBytes: decodeWeightBytes(config, 2), note: `ms a token (${scale.decodeTokens + 1} tokens minus 1, over ${scale.decodeTokens})` });
    });
    await theirs(run, `decode ${layers}`, scale.estimate.torchDecode(layers));
  }
  recordExtrapolated(run, 'decode');
  await theirs(run, 'decode 32', scale.estimate.torchDecode(32));
}

/** GPU rows and their summary lines; skipped (with a line saying why) on adapters that are not GPU-sized. */
export async function benchGpu(ctx: BenchContext): Promise<string[]> {
  const info = deviceInfo()!;
  if (ctx.quick || info.maxStorageBufferBindingSize < GiB) {
    const why = ctx.quick ? '--quick' : `the adapter binds ${info.maxStorageBufferBindingSize >> 20} MiB, not a GPU-sized 1 GiB`;
    ctx.log(`GPU rows (LLaMA-7B matmuls, LoRA step, decode): skipped (${why})`);
    return [`- GPU rows (matmul 2048x4096x4096 ..., LLaMA-7B LoRA step, decode): skipped (${why}).`];
  }
  const rows: AcceptanceRow[] = [];
  const run: Run = {
    scale: GPU_SCALE,
    adapter: info.adapterName,
    budget: new Budget(Infinity),
    rows,
    record: (r) => {
      rows.push(r);
      const { adapter: _adapter, ...row } = r;
      ctx.push(row);
    },
    note: ctx.log,
    log: ctx.log,
    torch: new TorchWorker(PYTHON, torchArgs(GPU_SCALE)),
    torchSkipped: new Set(),
  };
  const lines: string[] = [];
  try {
    await matmulSection(run);
    await loraSection(run);
    await decodeSection(run);
  } finally {
    run.torch!.close();
  }
  for (const dtype of (info.features.has('shader-f16') ? ['f16', 'f32'] : ['f32']) as FloatDType[]) {
    const r = await benchLoraProducts(dtype, 5, 1024);
    const shape = `x A^T, dy B, dh^T x; T ${loraProducts.tokens}, C ${loraProducts.width}, r ${loraProducts.rank}`;
    const splitNote = `${r.kernel} split along k (1024 workgroups): ${r.slices.join(', ')} slices`;
    for (const [how, ms] of [['as tuned', r.tuned], [`${r.kernel} unsplit`, r.unsplit], [splitNote, r.split]] as const) {
      ctx.push({ bench: 'LoRA products', impl: 'huatuo', dtype, shape, ms, gflops: null, gbps: null, note: how });
    }
    lines.push(`- LoRA products (${dtype}, ${shape}): ${r.tuned.toFixed(2)} ms as tuned; ${r.kernel} ${r.unsplit.toFixed(2)} unsplit, ${r.split.toFixed(2)} split along k (${r.slices.join(', ')} slices).`);
  }
  return [...acceptanceSummary(rows), ...lines, ...[...run.torchSkipped].map((s) => `- ${s}.`)];
}

/** Child processes to stop when the run ends early. */
const children = new Set<ChildProcess>();

/**
 * Runs a command under coreutils `timeout` (which stops the command's whole process group, the test
 * runner's workers too) for at most `seconds`, its output appended to `logPath` as it comes.
 */
function runTimed(args: string[], seconds: number, logPath: string): Promise<{ code: number | null; timedOut: boolean }> {
  const fd = openSync(logPath, 'a');
  // Under a test runner's NODE_TEST_CONTEXT a nested `node --test` would report to it instead of the log.
  const { NODE_TEST_CONTEXT: _runner, ...env } = process.env;
  const child = spawn('timeout', ['-k', '5', String(Math.max(1, Math.floor(seconds))), ...args], { cwd: root, stdio: ['ignore', fd, fd], env });
  children.add(child);
  return new Promise((resolve) => {
    // 'exit' may follow 'error' or not: the first of them ends the run.
    let ended = false;
    const end = (code: number | null) => {
      if (ended) return;
      ended = true;
      children.delete(child);
      closeSync(fd);
      resolve({ code, timedOut: code === 124 || code === 137 });
    };
    child.on('error', (e) => {
      process.stderr.write(`timeout ${args.join(' ')}: ${e.message}\n`);
      end(null);
    });
    child.on('exit', end);
  });
}

/** The counts a node:test spec report ends with, or (cut off before its end) the passed and failed lines so far; the failing tests' names. */
export function testsSummary(log: string): string {
  const counts = [...log.matchAll(/^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
  const failing: string[] = [];
  let where = '';
  for (const l of log.includes('failing tests:') ? log.slice(log.indexOf('failing tests:')).split('\n') : []) {
    if (l.startsWith('test at ')) where = l.slice('test at '.length);
    else if (l.startsWith('✖ ')) failing.push(`${l.slice(2).replace(/ \([\d.]+ms\)$/, '')}${where ? ` (${where})` : ''}`);
  }
  const head = counts.length > 0 ? counts.join(', ') : `cut off before its totals: ${(log.match(/^\s*✔ /gm) ?? []).length} passed, ${(log.match(/^\s*✖ /gm) ?? []).length} failed so far`;
  return failing.length > 0 ? `${head}; failing: ${failing.slice(0, 30).join('; ')}${failing.length > 30 ? `; and ${failing.length - 30} more` : ''}` : head;
}

/** Decode variants at 2 layers (bench/decode-width.bench.ts), in the order scripts/gpu-check.sh decode runs them. */
const VARIANTS: string[][] = [
  ['--fused', 'on', '--pipelined', 'on'],
  ['--fused', 'off', '--pipelined', 'on'],
  ['--fused', 'on', '--pipelined', 'off'],
  ['--fused', 'off', '--pipelined', 'off'],
  ['--adapter', '--fused', 'on'],
  ['--adapter', '--fused', 'off'],
  ['--sample', '--pipelined', 'on'],
  ['--sample', '--pipelined', 'off'],
  ['--quantize', 'nf4', '--adapter', '--fused', 'on'],
  ['--quantize', 'nf4', '--adapter', '--fused', 'off'],
];

/** The sections of an acceptance run, in priority order. */
export const SECTIONS = ['matmul', 'lora', 'decode', 'tests', 'report', 'variants'] as const;

export interface AcceptanceOptions {
  /** Folder for rows.jsonl, acceptance.md and the sections' logs. */
  out: string;
  /** Seconds from the process's start; the run stops at its end with everything written. */
  budgetS: number;
  small: boolean;
  /** Sections to run (default all), in SECTIONS' order whatever the order given. */
  sections: readonly string[];
  torch: boolean;
  /** What `node scripts/run-tests.mjs` is given. */
  tests: string[];
  log: (s: string) => void;
}

/**
 * The acceptance data of a GPU in one budgeted run: the roofline, then matmul, the LoRA step and greedy decode
 * each beside PyTorch, the test suite, the per-kernel report (bench/gpu-report.ts) and the decode variants, as
 * long as the budget lasts. A section or item that cannot fit in what is left is skipped, and said so; every
 * row is in `out`/rows.jsonl and `out`/acceptance.md the moment it is measured. Returns the exit code.
 */
export async function runAcceptance(o: AcceptanceOptions): Promise<number> {
  const info = deviceInfo()!;
  const scale = o.small ? SMALL_SCALE : GPU_SCALE;
  if (!o.small && info.maxStorageBufferBindingSize < GiB) {
    o.log(`--acceptance: the adapter binds ${info.maxStorageBufferBindingSize >> 20} MiB, not a GPU-sized 1 GiB; add --small to run the same items at toy sizes. Nothing measured or written.`);
    return 1;
  }
  const unknown = o.sections.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (unknown.length > 0) {
    o.log(`--sections: unknown ${unknown.join(', ')}; give some of ${SECTIONS.join(',')}`);
    return 1;
  }
  const budget = new Budget(o.budgetS);
  const started = new Date().toISOString();
  const header = `Started ${started} (\`bench/run.ts --acceptance${o.small ? ' --small' : ''}\`), budget ${o.budgetS} s from the process's start, scale ${scale.name} (${scale.model}, batch ${scale.batch} x ${scale.seq}), sections ${o.sections.join(', ')}. Rows: median ms after a warm-up, timed to GPU completion; each row is written the moment it is measured.`;
  const stream = new RowStream(o.out, `Acceptance run on ${info.adapterName}`, header);
  let current = 'setup';
  const note = (text: string) => {
    stream.note(text);
    o.log(`-- ${text}`);
  };
  const record = (r: AcceptanceRow) => {
    stream.row(r);
    const tflops = r.gflops !== null ? ` | ${(r.gflops / 1000).toPrecision(3)} TFLOP/s` : '';
    o.log(`row ${r.section}: ${r.bench} | ${r.impl} | ${r.dtype} | ${r.shape} | ${r.ms.toPrecision(4)} ms${tflops}${r.gbps !== null ? ` | ${r.gbps.toPrecision(3)} GB/s` : ''}${r.note ? ` | ${r.note}` : ''}`);
  };
  const torch = o.torch ? new TorchWorker(PYTHON, torchArgs(scale)) : null;
  const stop = (why: string, code: number) => {
    note(`${why} during ${current}: stopped; the rows measured so far are in rows.jsonl`);
    torch?.close();
    for (const c of children) c.kill('SIGTERM');
    for (const l of stream.summary()) o.log(l);
    process.exit(code);
  };
  const watchdog = setTimeout(() => stop(`the ${o.budgetS} s budget ended`, 2), Math.max(0, budget.leftS()) * 1000);
  watchdog.unref();
  process.once('SIGTERM', () => stop('SIGTERM', 143));
  process.once('SIGINT', () => stop('SIGINT', 130));

  const choice = await readyMatmul();
  note(`setup: matmul choice ${variantName(choice.main)}${choice.f16 ? `, f16 ${variantName(choice.f16)}` : ''} (fallback ${variantName(choice.fallback)}); ${budget.leftS().toFixed(0)} s of the budget left`);
  const roof = await measureRoofline(o.small);
  record({ section: 'roofline', bench: 'roofline fma', impl: 'huatuo', dtype: 'f32', shape: '-', ms: NaN, gflops: roof.gflops, gbps: null, adapter: info.adapterName });
  record({ section: 'roofline', bench: 'roofline copy', impl: 'huatuo', dtype: 'f32', shape: '-', ms: NaN, gflops: null, gbps: roof.copyGbps, adapter: info.adapterName, readGbps: roof.readGbps, note: `read ${roof.readGbps.toFixed(2)} GB/s` });

  const run: Run = { scale, adapter: info.adapterName, budget, rows: stream.rows, record, note, log: o.log, torch, torchSkipped: new Set() };
  const sub = (name: string) => join(o.out, `${name}.log`);
  const node = (file: string, ...args: string[]) => [process.execPath, '--conditions=source', '--import', 'tsx', join(root, file), ...args];
  const sections: Record<(typeof SECTIONS)[number], { needS: number; run: () => Promise<void> }> = {
    matmul: { needS: scale.estimate.matmul, run: () => matmulSection(run) },
    lora: { needS: scale.estimate.step(2), run: () => loraSection(run) },
    decode: { needS: scale.estimate.decode(2), run: () => decodeSection(run) },
    tests: {
      needS: scale.estimate.tests,
      run: async () => {
        torch?.close(); // its GPU memory is the tests' from here on
        const seconds = budget.leftS() - 3;
        note(`tests: node scripts/run-tests.mjs ${o.tests.join(' ')}, for at most ${seconds.toFixed(0)} s (output in tests.log)`);
        const r = await runTimed([process.execPath, join(root, 'scripts/run-tests.mjs'), ...o.tests], seconds, sub('tests'));
        note(`tests: exit ${r.code}${r.timedOut ? ' (stopped at the budget)' : ''}; ${testsSummary(readFileSync(sub('tests'), 'utf8'))}`);
      },
    },
    report: {
      needS: scale.estimate.report,
      run: async () => {
        const r = await runTimed(node('bench/gpu-report.ts', o.out, ...(o.small ? ['--smoke'] : [])), budget.leftS() - 3, sub('report'));
        note(`report: bench/gpu-report.ts exit ${r.code}${r.timedOut ? ' (stopped at the budget)' : ''} (report.log, gpu-report.json)`);
      },
    },
    variants: {
      needS: scale.estimate.variant,
      run: async () => {
        const size = o.small ? ['--small', '--layers', '2', '--tokens', '8', '--runs', '2'] : ['--layers', '2', '--tokens', '32', '--runs', '3'];
        for (const v of VARIANTS) {
          const name = `greedy decode L2 ${v.join(' ').replaceAll('--', '')}`;
          await ours(run, name, scale.estimate.variant, async () => {
            const from = statSync(sub('decode-variants'), { throwIfNoEntry: false })?.size ?? 0;
            const r = await runTimed(node('bench/decode-width.bench.ts', ...size, '--dtype', 'f16', ...v), budget.leftS() - 3, sub('decode-variants'));
            const text = readFileSync(sub('decode-variants'), 'utf8').slice(from);
            const median = /^median ([\d.]+) ms\/token$/m.exec(text);
            if (median === null) return note(`${name}: no result (exit ${r.code}${r.timedOut ? ', stopped at the budget' : ''}; decode-variants.log)`);
            record({ section: 'decode-variants', bench: `${o.small ? 'hidden-256' : 'llama-7b'} greedy decode`, impl: 'huatuo', dtype: 'f16', shape: `L2 B1 ${v.join(' ')}`, ms: Number(median[1]), gflops: null, gbps: null, adapter: info.adapterName, layers: 2, note: 'bench/decode-width.bench.ts, median of its runs' });
          });
        }
      },
    },
  };
  for (const name of SECTIONS) {
    if (!o.sections.includes(name)) continue;
    const s = sections[name];
    const left = budget.leftS();
    if (left < s.needS) {
      note(`${name}: skipped (needs at least ~${s.needS.toFixed(0)} s, ${Math.max(0, left).toFixed(0)} s left of the ${o.budgetS} s budget)`);
      continue;
    }
    current = name;
    const t0 = performance.now();
    note(`${name}: started with ${left.toFixed(0)} s of the budget left`);
    try {
      await s.run();
    } catch (e) {
      note(`${name}: failed: ${((e as Error).stack ?? String(e)).split('\n').slice(0, 3).join(' | ')}`);
    }
    note(`${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  current = 'the end';
  clearTimeout(watchdog);
  torch?.close();
  o.log('\nTargets (also in acceptance.md):');
  for (const l of stream.summary()) o.log(l);
  o.log(`\nwrote ${stream.jsonlPath} and ${stream.markdownPath}`);
  return 0;
}

/**
 * A LoRA training step (r 8 on q/v, AdamW, clip 1) of a random f16 model of `config` on a batch x seq
 * batch: `run` does one step and returns the loss; `dispose` frees the model, optimizer and batch.
 */
export function loraStepRunner(config: LlamaConfig, batch: number, seq: number): { run: () => Promise<number>; dispose: () => void } {
  const model = createRandomLlama(config, { seed: 1, dtype: 'f16' });
  model.training = true;
  const params = applyLora(model, { r: 8, alpha: 16, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] }, { seed: 2 });
  const opt = new AdamW(params, { lr: 1e-4 });
  const ids = tensor(tokenIds(batch * seq, config.vocabSize, 3), [batch, seq], { dtype: 'i32' });
  // Every run, the first timed one too, uses the same attention kernels.
  const ready = readyAttention({ headDim: config.headDim, dtypes: ['f16'], backward: true });
  const run = async () => {
    await ready;
    const s = startScope();
    try {
      const loss: Tensor = model.loss(ids, ids);
      loss.backward();
      clipGradNorm(params, 1);
      opt.step();
      opt.zeroGrad();
      return await loss.item();
    } finally {
      s.end();
    }
  };
  const dispose = () => {
    opt.dispose();
    ids.dispose();
    model.dispose();
  };
  return { run, dispose };
}

/** One LoRA step of a random f16 model of `config` (see loraStepRunner): median ms, and a note naming the top kernels of a profiled step. */
async function loraStep(config: LlamaConfig, batch: number, seq: number, log: (s: string) => void): Promise<{ ms: number; note: string }> {
  const { run, dispose } = loraStepRunner(config, batch, seq);
  try {
    const ms = await timeMedian(run, 3, 1, `LoRA step L${config.numHiddenLayers}`);
    const { report } = await profile(run);
    const top = report.kernels.slice(0, 4).map((k) => `${k.label} ${(k.ms ?? 0).toFixed(1)} ms`).join(', ');
    log(`LoRA step L${config.numHiddenLayers}: ${ms.toFixed(1)} ms; kernels ${report.gpuMs.toFixed(1)} ms (${report.source}); top ${top}`);
    return { ms, note: `kernels ${report.gpuMs.toFixed(0)} ms of the profiled step; top: ${top}` };
  } finally {
    dispose();
  }
}

/** Milliseconds per token of greedy decoding (batch 1, f16, a 16-token prompt): generating 1 + tokens minus generating 1, over tokens. */
async function decodeStep(config: LlamaConfig, tokens: number): Promise<number> {
  const model = createRandomLlama(config, { seed: 1, dtype: 'f16' });
  try {
    const prompt = Array.from(tokenIds(16, config.vocabSize, 5));
    const gen = (n: number) => async () => generate(model, null, [prompt], { maxNewTokens: n, eosTokenIds: [] });
    const one = await timeMedian(gen(1), 3, 1, `decode L${config.numHiddenLayers} 1`);
    const many = await timeMedian(gen(1 + tokens), 3, 1, `decode L${config.numHiddenLayers} ${1 + tokens}`);
    return (many - one) / tokens;
  } finally {
    model.dispose();
  }
}
