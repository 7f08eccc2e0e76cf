// The adapter's own roofline, measured in the same run: bandwidth kernels (vec4 copies, the faster
// of two launch shapes) and an
// FMA-bound kernel (independent vec4 fma chains), timed with idle waiting (sleep, then wait) and
// by timestamp queries where the adapter has them.
import { getRuntime } from '@huatuo/tensor/internal';
import { Profiler } from '@huatuo/tensor';
import { sleep } from './timing.js';

const COPY_WGSL = `
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}`;

// The same copy with fewer, longer-running invocations (each strides over the array, four
// consecutive vec4 per step), which suits CPU adapters whose per-workgroup cost is high; the
// roofline keeps the faster of the two.
const COPY_STRIDED_WGSL = `
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = arrayLength(&dst) / 4u;
  let stride = nwg.x * 64u;
  for (var i = gid.x; i < n; i += stride) {
    dst[4u * i] = src[4u * i];
    dst[4u * i + 1u] = src[4u * i + 1u];
    dst[4u * i + 2u] = src[4u * i + 2u];
    dst[4u * i + 3u] = src[4u * i + 3u];
  }
}`;

const FMA_ITERS = 512;
const FMA_WGSL = `
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = f32(gid.x) * 1e-9;
  var a0 = vec4<f32>(s); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
  var a4 = a0 + 4.0; var a5 = a0 + 5.0; var a6 = a0 + 6.0; var a7 = a0 + 7.0;
  let m = vec4<f32>(0.999); let c = vec4<f32>(1e-3);
  for (var i = 0u; i < ${FMA_ITERS / 4}u; i++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  out[gid.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}`;

export interface Roofline {
  /** FMA-bound GFLOP/s. */
  gflops: number;
  /** Copy kernel: read GB/s (bytes read / time) and read+write GB/s. */
  readGbps: number;
  copyGbps: number;
  copyToCopyGbps: number;
}

/**
 * Milliseconds of one dispatch measured by timestamp queries while the host sleeps (idle waiting):
 * `reps` dispatches, median. Falls back to wall clock with a sleep of the previous time.
 */
export async function idleKernelMs(encode: () => void, reps: number): Promise<number> {
  const rt = getRuntime();
  encode();
  await rt.sync();
  const samples: number[] = [];
  let guess = 0;
  for (let i = 0; i < reps; i++) {
    const p = new Profiler();
    p.start();
    const t0 = performance.now();
    encode();
    rt.flush();
    if (guess > 0) await sleep(guess * 1.15);
    const r = await p.stop();
    const wall = performance.now() - t0;
    const ms = r.source === 'timestamp-query' && r.gpuMs > 0 ? r.gpuMs : wall;
    guess = ms;
    if (i > 0 || reps === 1) samples.push(ms);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

export async function measureRoofline(quick: boolean): Promise<Roofline> {
  const rt = getRuntime();
  const dev = rt.device;
  const bytes = (quick ? 32 : 64) << 20;
  const src = dev.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const dst = dev.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const copy = rt.kernel('bench-copy', COPY_WGSL, 'bench copy');
  const n4 = bytes / 16;
  const groups = Math.ceil(n4 / 64);
  const gx = Math.min(groups, 65535);
  const gy = Math.ceil(groups / gx);
  const perElementMs = await idleKernelMs(() => rt.dispatch({ kernel: copy, buffers: [src, dst], workgroups: [gx, gy], label: 'roofline copy' }), 5);
  const strided = rt.kernel('bench-copy-strided', COPY_STRIDED_WGSL, 'bench copy strided');
  const stridedMs = await idleKernelMs(() => rt.dispatch({ kernel: strided, buffers: [src, dst], workgroups: [256], label: 'roofline copy strided' }), 5);
  const copyMs = Math.min(perElementMs, stridedMs);
  const c2cMs = await idleKernelMs(() => rt.copy(src, 0, dst, 0, bytes), 3);
  const threads = 64 * 1024;
  const out = dev.createBuffer({ size: threads * 16, usage: GPUBufferUsage.STORAGE });
  const fma = rt.kernel('bench-fma', FMA_WGSL, 'bench fma');
  const fmaMs = await idleKernelMs(() => rt.dispatch({ kernel: fma, buffers: [out], workgroups: [threads / 64], label: 'roofline fma' }), 5);
  const flops = threads * FMA_ITERS * 8 * 4 * 2;
  await rt.sync();
  for (const b of [src, dst, out]) b.destroy();
  return { gflops: flops / fmaMs / 1e6, readGbps: bytes / copyMs / 1e6, copyGbps: (2 * bytes) / copyMs / 1e6, copyToCopyGbps: (2 * bytes) / c2cMs / 1e6 };
}
