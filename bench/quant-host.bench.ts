// Host quantization cost per weight at LLaMA-7B projection sizes (4096x4096, 11008x4096): quantizeNf4 and
// quantizeInt8 on f32 weights, the loader's host path for one F16 tensor of a safetensors checkpoint (read as
// f16 bits with the finite check, then quantized from them), CPU only; and loadLlama of one LLaMA-7B-shaped
// layer from an F16 folder on disk, quantized on 1 thread and on worker threads (quantizeThreads).
// `node --conditions=source --import tsx bench/quant-host.bench.ts [--quick] [--load [--threads 1,2]]` runs it
// alone (--load: only the layer load, which needs a WebGPU adapter).
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint, bytesSource, configFromPreset, expectedWeights, loadLlama, serializeSafetensors, toHfConfigJson, writeSafetensors } from '@huatuo/llama';
import { defaultQuantizeThreads, f32ToF16Bits, initWebGPU, quantizeHost, quantizeHostF16, type QuantFormat } from '@huatuo/tensor';
import type { Row } from './timing.js';

/** Seeded roughly normal values (sum of four uniforms) with standard deviation `std`, as f16 would hold them. */
function weights(n: number, seed: number, std: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const k = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() + next() - 2) * k;
  return out;
}

/** Minimum and median wall milliseconds of `fn` over `reps` runs after one warm-up run. */
async function time(fn: () => unknown, reps: number): Promise<{ min: number; median: number }> {
  await fn();
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { min: ms[0]!, median: ms[Math.floor(ms.length / 2)]! };
}

/**
 * Times host quantization and the quantized load path at [rows, cols] for each shape; pushes one row per
 * case with ns per weight in the note. Returns one summary line per case.
 */
export async function benchQuantHost(
  ctx: { reps: number; push: (r: Omit<Row, 'adapter'>) => void },
  shapes: readonly [number, number][] = [
    [4096, 4096],
    [11008, 4096],
  ],
): Promise<string[]> {
  const lines: string[] = [];
  for (const [rows, cols] of shapes) {
    const n = rows * cols;
    const shape = `${rows}x${cols}`;
    const w32 = weights(n, 7, 0.02);
    const file = serializeSafetensors([{ name: 'w', dtype: 'F16', shape: [rows, cols], data: f32ToF16Bits(w32) }]);
    const ckpt = await Checkpoint.open('bench', undefined, async () => bytesSource('model.safetensors', file));
    const record = (bench: string, impl: string, dtype: string, t: { min: number; median: number }) => {
      const ns = (ms: number) => ((ms * 1e6) / n).toFixed(2);
      ctx.push({ bench, impl, dtype, shape, ms: t.median, gflops: null, gbps: null, note: `${ns(t.median)} ns/weight (min ${ns(t.min)})` });
      lines.push(`- ${bench} ${impl} ${shape}: ${ns(t.median)} ns per weight (median), ${ns(t.min)} (min).`);
    };
    for (const format of ['nf4', 'int8'] as QuantFormat[]) {
      record('quantize host', `huatuo ${format}`, 'f32', await time(() => quantizeHost(w32, rows, cols, format), ctx.reps));
    }
    // The loader's steps for one projection (loadLlamaFromCheckpoint): the tensor read as f16 bits with the
    // finite check (Checkpoint.iterateExact; the bytes come from memory here), then quantized from them.
    const read = async (): Promise<Float32Array | Uint16Array> => {
      for await (const { data } of ckpt.iterateExact()) return data;
      throw new Error('internal: the bench checkpoint is empty');
    };
    record('load read', 'huatuo', 'f16', await time(read, ctx.reps));
    for (const format of ['nf4', 'int8'] as QuantFormat[]) {
      const load = async () => {
        const data = await read();
        return data instanceof Uint16Array ? quantizeHostF16(data, rows, cols, format) : quantizeHost(data, rows, cols, format);
      };
      record('load quantized', `huatuo ${format}`, 'f16', await time(load, ctx.reps));
    }
    await ckpt.close();
  }
  return lines;
}

/** CPU milliseconds the main thread has run (Linux's /proc/thread-self/schedstat), NaN elsewhere. */
function mainThreadCpuMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/**
 * Times loadLlama({ quantize: 'nf4', quantizeThreads }) of one LLaMA-7B-shaped decoder layer (vocabulary 32)
 * from an F16 safetensors folder written to a temporary directory (read from the page cache after the first
 * load), for each thread count: read, quantize, finite check, upload, and the worker threads' start (about 0.1 s
 * from dist, 0.5-1 s from the TypeScript sources, which each worker compiles through tsx). Pushes one row per
 * count with ns per projection weight, wall and the main thread's CPU (what is left to it: the rest runs on the
 * workers, the file reads and the adapter's threads). Needs an initialized WebGPU adapter.
 */
export async function benchQuantLoad(
  ctx: { reps: number; push: (r: Omit<Row, 'adapter'>) => void },
  threadCounts: readonly number[] = [1, Math.max(2, defaultQuantizeThreads())],
  hidden = 4096,
): Promise<string[]> {
  const config = configFromPreset('llama-7b', { numHiddenLayers: 1, vocabSize: 32, hiddenSize: hidden, intermediateSize: Math.round((hidden * 11008) / 4096), numAttentionHeads: hidden / 128, numKeyValueHeads: hidden / 128 });
  const specs = expectedWeights(config);
  const projectionWeights = specs.filter((s) => s.name.endsWith('_proj.weight')).reduce((a, s) => a + s.shape[0]! * s.shape[1]!, 0);
  const dir = await mkdtemp(join(tmpdir(), 'quant-load-bench-'));
  const lines: string[] = [];
  try {
    await writeFile(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(config)));
    await writeSafetensors(
      join(dir, 'model.safetensors'),
      specs.map((spec, i) => ({ name: spec.name, dtype: 'F16' as const, shape: spec.shape, data: () => f32ToF16Bits(weights(spec.shape.reduce((a, b) => a * b, 1), 11 + i, 0.02)) })),
    );
    const shape = `1 layer ${hidden}`;
    for (const threads of threadCounts) {
      let cpu = 0;
      const load = async () => {
        const c0 = mainThreadCpuMs();
        (await loadLlama(dir, { quantize: 'nf4', quantizeThreads: threads })).dispose();
        cpu = mainThreadCpuMs() - c0;
      };
      const t = await time(load, ctx.reps);
      const ns = (ms: number) => ((ms * 1e6) / projectionWeights).toFixed(2);
      const impl = `huatuo nf4 ${threads} thread${threads === 1 ? '' : 's'}`;
      const main = Number.isNaN(cpu) ? '' : `, main thread CPU ${ns(cpu)} (last run)`;
      ctx.push({ bench: 'load quantized layer', impl, dtype: 'f16', shape, ms: t.median, gflops: null, gbps: null, note: `${ns(t.median)} ns/weight (min ${ns(t.min)})${main}` });
      lines.push(`- load quantized layer ${impl} ${shape}: ${ns(t.median)} ns per projection weight (median), ${ns(t.min)} (min)${main}.`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const push = (r: Omit<Row, 'adapter'>) => log(`${r.bench.padEnd(20)} ${r.impl.padEnd(12)} ${r.dtype} ${r.shape.padEnd(10)} ${r.ms.toFixed(1).padStart(8)} ms ${r.note ?? ''}`);
  const reps = quick ? 3 : 5;
  if (process.argv.includes('--load')) {
    const at = process.argv.indexOf('--threads');
    const counts = at > 0 ? process.argv[at + 1]!.split(',').map(Number) : undefined;
    await initWebGPU();
    log((await benchQuantLoad({ reps, push }, counts, quick ? 1024 : 4096)).join('\n'));
  } else {
    const shapes: [number, number][] = quick ? [[1024, 1024]] : [[4096, 4096], [11008, 4096]];
    log((await benchQuantHost({ reps, push }, shapes)).join('\n'));
  }
}
