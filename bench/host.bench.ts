// Host (JavaScript) cost of each dispatch in greedy decoding of a small LLaMA, where the GPU work is small:
// per token, the milliseconds the host spends encoding (wall time less the time awaiting readbacks and
// syncs), the dispatches, submits and readbacks, and so the host microseconds per dispatch. Run alone:
// `node --conditions=source --import tsx bench/host.bench.ts [--tokens N] [--runs N] [--cpu-profile FILE]`
// (FILE: a .cpuprofile of the timed runs, for Chrome's DevTools).
import { destroyWebGPU, initWebGPU, noGrad, runtimeStats, tensor, toArray } from '@huatuo/tensor';
import { getRuntime } from '@huatuo/tensor/internal';
import { configFromPreset, createRandomLlama, generate, type LlamaConfig } from '@huatuo/llama';
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { BenchContext } from './kernels.bench.js';

/** Per-token figures of one greedy generation (decode steps only, the prompt's step left out). */
export interface HostDecode {
  tokens: number;
  /** Wall milliseconds per token. */
  ms: number;
  /** Host milliseconds per token: wall time less the time spent awaiting the GPU. */
  hostMs: number;
  /**
   * The main thread's CPU milliseconds per token outside those waits (Linux; else null): unlike
   * hostMs, not inflated when other processes take the cores.
   */
  cpuMs: number | null;
  /** Milliseconds per token awaiting readbacks and syncs. */
  waitMs: number;
  dispatches: number;
  submits: number;
  readbacks: number;
  /** Bind groups and storage buffers created per token (NaN where runtimeStats has no bindGroups). */
  bindGroups: number;
  buffersCreated: number;
  /** Host microseconds per dispatch (from cpuMs where known, else hostMs). */
  usPerDispatch: number;
  /** FNV-1a of the generated ids, to check that two builds decode alike. */
  tokenHash: number;
}

/** Hidden 256, 4 layers, grouped-query heads (4 query heads, 2 KV heads of 64): little GPU work per dispatch. */
export function hostDecodeConfig(): LlamaConfig {
  return configFromPreset('tiny', { hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2 });
}

/**
 * Greedy decoding of `tokens` new tokens after an 8-token prompt, timed per token from the streamed
 * tokens; the time inside the runtime's readbacks and syncs after their submit counts as waiting.
 */
export async function measureHostDecode(config: LlamaConfig, tokens: number, runs: number, profile?: string): Promise<{ runs: HostDecode[]; logitsHash: number }> {
  const model = createRandomLlama(config, { seed: 1 });
  const rt = getRuntime();
  const read = rt.read.bind(rt);
  const sync = rt.sync.bind(rt);
  let waiting = 0;
  let waitingCpu = 0;
  const timed = async <T>(p: Promise<T>): Promise<T> => {
    const [t0, c0] = [performance.now(), threadCpuMs()];
    try {
      return await p;
    } finally {
      waiting += performance.now() - t0;
      waitingCpu += (threadCpuMs() ?? 0) - (c0 ?? 0);
    }
  };
  // The synchronous part of a readback (encoding the copy, finishing and submitting) is host work.
  rt.read = (buffer, offset, bytes) => timed(read(buffer, offset, bytes));
  rt.sync = () => timed(sync());
  const session = new Session();
  const prompt = [1, 450, 4996, 17354, 1701, 29916, 432, 17204];
  const out: HostDecode[] = [];
  try {
    if (profile !== undefined) {
      session.connect();
      await session.post('Profiler.enable');
    }
    for (let run = 0; run < runs + 1; run++) {
      const marks: { t: number; cpu: number | null; waited: number; waitedCpu: number; stats: ReturnType<typeof runtimeStats> }[] = [];
      const ids: number[] = [];
      await generate(model, null, [prompt], {
        maxNewTokens: tokens + 1,
        eosTokenIds: [],
        onToken: (e) => {
          ids.push(e.token);
          marks.push({ t: performance.now(), cpu: threadCpuMs(), waited: waiting, waitedCpu: waitingCpu, stats: runtimeStats() });
        },
      });
      if (run === 0) {
        // The first run compiles pipelines and teaches the wait pacer the steps.
        if (profile !== undefined) await session.post('Profiler.start');
        continue;
      }
      const first = marks[0]!;
      const last = marks[marks.length - 1]!;
      const n = marks.length - 1;
      const ms = (last.t - first.t) / n;
      const waitMs = (last.waited - first.waited) / n;
      const dispatches = (last.stats.dispatches - first.stats.dispatches) / n;
      const cpuMs = last.cpu === null || first.cpu === null ? null : (last.cpu - first.cpu - (last.waitedCpu - first.waitedCpu)) / n;
      out.push({
        tokens: n,
        ms,
        hostMs: ms - waitMs,
        cpuMs,
        waitMs,
        dispatches,
        submits: (last.stats.submits - first.stats.submits) / n,
        readbacks: (last.stats.readbacks - first.stats.readbacks) / n,
        bindGroups: ((last.stats.bindGroups ?? NaN) - (first.stats.bindGroups ?? NaN)) / n,
        buffersCreated: (last.stats.buffersCreated - first.stats.buffersCreated) / n,
        usPerDispatch: ((cpuMs ?? ms - waitMs) * 1000) / dispatches,
        tokenHash: fnv(Int32Array.from(ids)),
      });
    }
    if (profile !== undefined) {
      writeFileSync(profile, JSON.stringify((await session.post('Profiler.stop')).profile));
      session.disconnect();
    }
    const logits = noGrad(() => model.forward(tensor(Int32Array.from(prompt), [1, prompt.length])));
    const logitsHash = fnv((await toArray(logits)) as Float32Array);
    logits.dispose();
    return { runs: out, logitsHash };
  } finally {
    rt.read = read;
    rt.sync = sync;
    model.dispose();
  }
}

/** CPU milliseconds the calling (main) thread has run, from Linux's /proc/thread-self/schedstat; null elsewhere. */
function threadCpuMs(): number | null {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}

function fnv(a: Int32Array | Float32Array): number {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The bench/run.ts rows: the median run's host figures, and a target line (8 us a dispatch). */
export async function benchHost(ctx: BenchContext): Promise<string[]> {
  const { runs } = await measureHostDecode(hostDecodeConfig(), ctx.quick ? 16 : 32, ctx.reps);
  const host = median(runs.map((r) => r.usPerDispatch));
  const r = runs.find((x) => x.usPerDispatch === host)!;
  ctx.push({
    bench: 'decode host',
    impl: 'huatuo',
    dtype: 'f32',
    shape: 'C256 L4',
    ms: r.ms,
    gflops: null,
    gbps: null,
    note: `host ${r.hostMs.toFixed(2)} ms/token (main thread CPU ${r.cpuMs?.toFixed(2) ?? '-'}), ${r.dispatches.toFixed(0)} dispatches/token, ${r.usPerDispatch.toFixed(1)} us/dispatch, ${r.readbacks} readbacks/token`,
  });
  return [`- Decode host work (greedy, hidden 256, 4 layers): ${host.toFixed(1)} us per dispatch, ${r.dispatches.toFixed(0)} dispatches and ${r.readbacks} readback per token (target <= 8 us): ${host <= 8 ? 'met' : '**missed**'}.`];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
  };
  // No background matmul search beside the timed steps (it would dispatch and read back between them).
  process.env.HUATUO_MATMUL_TUNE ??= '0';
  await initWebGPU();
  const profile = process.argv.indexOf('--cpu-profile');
  const { runs, logitsHash } = await measureHostDecode(hostDecodeConfig(), arg('--tokens', 32), arg('--runs', 5), profile >= 0 ? process.argv[profile + 1] : undefined);
  for (const r of runs) {
    process.stdout.write(
      `${r.tokens} tokens: ${r.ms.toFixed(2)} ms/token = host ${r.hostMs.toFixed(2)} (CPU ${r.cpuMs?.toFixed(2) ?? '-'}) + wait ${r.waitMs.toFixed(2)}; ` +
        `${r.dispatches.toFixed(1)} dispatches, ${r.submits.toFixed(2)} submits, ${r.readbacks.toFixed(2)} readbacks, ` +
        `${r.bindGroups.toFixed(2)} bind groups and ${r.buffersCreated.toFixed(2)} buffers created per token; ` +
        `${r.usPerDispatch.toFixed(1)} us/dispatch; tokens ${r.tokenHash.toString(16)}\n`,
    );
  }
  process.stdout.write(`median host ${median(runs.map((r) => r.usPerDispatch)).toFixed(1)} us/dispatch; logits ${logitsHash.toString(16)}\n`);
  await destroyWebGPU();
  process.exit(0);
}
