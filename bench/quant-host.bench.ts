// Host quantization cost per weight at LLaMA-7B projection sizes (4096x4096, 11008x4096): quantizeNf4 and
// quantizeInt8 on f32 weights, and the loader's whole host path for one F16 tensor of a safetensors file
// (read, f16 -> f32, finite check, quantize, the word copy of the upload). CPU only, no adapter needed.
// `node --conditions=source --import tsx bench/quant-host.bench.ts [--quick]` runs it alone.
import { SafetensorsFile, bytesSource, serializeSafetensors } from '@huatuo/llama';
import { f32ToF16Bits, quantizeHost, type HostQuantized, type QuantFormat } from '@huatuo/tensor';
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
function time(fn: () => unknown, reps: number): { min: number; median: number } {
  fn();
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { min: ms[0]!, median: ms[Math.floor(ms.length / 2)]! };
}

/** The upload's host copy: codes as zero-padded little-endian u32 words (QuantizedWeight.upload does this). */
function uploadWords(q: HostQuantized): number {
  const bytes = q.format === 'int8' ? q.codes : q.packed;
  const out = new Uint32Array(Math.max(1, Math.ceil(bytes.length / 4)));
  new Uint8Array(out.buffer).set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  return out[0]!;
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
    const st = await SafetensorsFile.open(bytesSource('bench.safetensors', file));
    const record = (bench: string, impl: string, dtype: string, t: { min: number; median: number }) => {
      const ns = (ms: number) => ((ms * 1e6) / n).toFixed(2);
      ctx.push({ bench, impl, dtype, shape, ms: t.median, gflops: null, gbps: null, note: `${ns(t.median)} ns/weight (min ${ns(t.min)})` });
      lines.push(`- ${bench} ${impl} ${shape}: ${ns(t.median)} ns per weight (median), ${ns(t.min)} (min).`);
    };
    for (const format of ['nf4', 'int8'] as QuantFormat[]) {
      record('quantize host', `huatuo ${format}`, 'f32', time(() => quantizeHost(w32, rows, cols, format), ctx.reps));
    }
    // The loader's steps for one projection: bytes read from the file (an in-memory copy here), F16 -> f32
    // with the finite check (SafetensorsFile.readAs), quantized, the codes copied to words for the upload.
    let f32: Float32Array = new Float32Array(0);
    const readAs = async () => {
      f32 = await st.readAs('w', 'f32');
    };
    const reads: number[] = [];
    await readAs();
    for (let r = 0; r < ctx.reps; r++) {
      const t0 = performance.now();
      await readAs();
      reads.push(performance.now() - t0);
    }
    reads.sort((a, b) => a - b);
    record('load read f16->f32', 'huatuo', 'f16', { min: reads[0]!, median: reads[Math.floor(reads.length / 2)]! });
    for (const format of ['nf4', 'int8'] as QuantFormat[]) {
      const whole: number[] = [];
      for (let r = 0; r <= ctx.reps; r++) {
        const t0 = performance.now();
        await readAs();
        uploadWords(quantizeHost(f32, rows, cols, format));
        if (r > 0) whole.push(performance.now() - t0);
      }
      whole.sort((a, b) => a - b);
      record('load quantized', `huatuo ${format}`, 'f16', { min: whole[0]!, median: whole[Math.floor(whole.length / 2)]! });
    }
    await st.close();
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const shapes: [number, number][] = quick ? [[1024, 1024]] : [[4096, 4096], [11008, 4096]];
  const lines = await benchQuantHost({ reps: quick ? 3 : 5, push: (r) => log(`${r.bench.padEnd(20)} ${r.impl.padEnd(12)} ${r.dtype} ${r.shape.padEnd(10)} ${r.ms.toFixed(1).padStart(8)} ms ${r.note ?? ''}`) }, shapes);
  log(lines.join('\n'));
}
