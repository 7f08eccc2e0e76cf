// Host (JavaScript) cost of each dispatch where the GPU work is small: greedy decoding of a small LLaMA
// (per token) and a LoRA training step of the tiny preset (per step): the milliseconds the host spends
// encoding (wall and main-thread CPU time outside the waits for the GPU), the dispatches, submits and
// readbacks, and so the host microseconds per dispatch. Run alone:
// `node --conditions=source --import tsx bench/host.bench.ts [--tokens N] [--steps N] [--runs N] [--replay on|off] [--cpu-profile FILE]`
// (--replay: decode steps replayed from a recording, on by default, or every step's ops run; FILE: a
// .cpuprofile of the timed decoding runs, for Chrome's DevTools).
import { destroyWebGPU, initWebGPU, noGrad, tensor, toArray } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate, type LlamaConfig } from '@huatuo/llama';
import { decodeReplayEnabled, lastReplayCounts, setDecodeReplay } from '@huatuo/llama/internal';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { formatCost, HostClock, type HostCost, type HostSnapshot } from './host-clock.js';
import type { BenchContext } from './kernels.bench.js';
import { trainStep } from './train.bench.js';

/** Per-token figures of one greedy generation (decode steps only, the prompt's step left out). */
export interface HostDecode extends HostCost {
  tokens: number;
  /** FNV-1a of the generated ids, to check that two builds decode alike. */
  tokenHash: number;
  /** Decode steps replayed from a recording, and recorded (run as usual), in the whole generation. */
  replayed: number;
  recorded: number;
}

/** Hidden 256, 4 layers, grouped-query heads (4 query heads, 2 KV heads of 64): little GPU work per dispatch. */
export function hostDecodeConfig(): LlamaConfig {
  return configFromPreset('tiny', { hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2 });
}

/**
 * Greedy decoding of `tokens` new tokens after an 8-token prompt, `runs` times after a first untimed
 * run, timed per token from the streamed tokens; also a hash of the prompt's logits. `replay`: decode
 * steps replayed from a recording (the default) or every step's ops run.
 */
export async function measureHostDecode(config: LlamaConfig, tokens: number, runs: number, profile?: string, replay = true): Promise<{ runs: HostDecode[]; logitsHash: number }> {
  const model = createRandomLlama(config, { seed: 1 });
  const replayWas = decodeReplayEnabled();
  setDecodeReplay(replay);
  const clock = new HostClock();
  const session = new Session();
  const prompt = [1, 450, 4996, 17354, 1701, 29916, 432, 17204];
  const out: HostDecode[] = [];
  try {
    if (profile !== undefined) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 100 });
    }
    for (let run = 0; run < runs + 1; run++) {
      const marks: HostSnapshot[] = [];
      const ids: number[] = [];
      // One token past the window: decoding one step ahead encodes the step after a token before
      // streaming it, so the window from the 1st to the (tokens + 1)th holds `tokens` steps either way.
      await generate(model, null, [prompt], {
        maxNewTokens: tokens + 2,
        eosTokenIds: [],
        onToken: (e) => {
          ids.push(e.token);
          // Only the first and last: a snapshot reads /proc, host work the window would count.
          if (ids.length === 1 || ids.length === tokens + 1) marks.push(clock.snapshot());
        },
      });
      if (run === 0) {
        // The first run compiles pipelines and teaches the wait pacer the steps.
        if (profile !== undefined) await session.post('Profiler.start');
        continue;
      }
      const counts = lastReplayCounts();
      out.push({ tokens, ...HostClock.cost(marks[0]!, marks[1]!, tokens), tokenHash: fnv(Int32Array.from(ids.slice(0, tokens + 1))), replayed: counts?.replayed ?? 0, recorded: counts?.recorded ?? 0 });
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
    setDecodeReplay(replayWas);
    clock.dispose();
    model.dispose();
  }
}

/**
 * `steps` LoRA training steps of the tiny preset on 32 tokens as the trainer runs them (forward, loss,
 * backward, clip, AdamW, the loss read back), `runs` times after 24 untimed steps (the pool's buffers
 * settle, so that the steps reuse their bind groups); also the last loss.
 */
export async function measureHostTrain(steps: number, runs: number): Promise<{ runs: HostCost[]; loss: number }> {
  const { step, dispose } = trainStep({ name: 'tiny', config: configFromPreset('tiny'), seq: 32, params: 0 }, 'f32');
  const clock = new HostClock();
  const out: HostCost[] = [];
  let loss = NaN;
  try {
    for (let i = 0; i < 24; i++) loss = await step();
    for (let run = 0; run < runs; run++) {
      const first = clock.snapshot();
      for (let i = 0; i < steps; i++) loss = await step();
      out.push(HostClock.cost(first, clock.snapshot(), steps));
    }
    return { runs: out, loss };
  } finally {
    clock.dispose();
    dispose();
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
  const decodeRow = async (replay: boolean) => {
    const { runs } = await measureHostDecode(hostDecodeConfig(), ctx.quick ? 16 : 32, ctx.reps, undefined, replay);
    const us = median(runs.map((x) => x.usPerDispatch));
    const r = runs.find((x) => x.usPerDispatch === us)!;
    ctx.push({
      bench: 'decode host',
      impl: replay ? 'huatuo (replayed steps)' : 'huatuo (every step run)',
      dtype: 'f32',
      shape: 'C256 L4',
      ms: r.ms,
      gflops: null,
      gbps: null,
      note: `host ${r.hostMs.toFixed(2)} ms/token (main thread CPU ${r.cpuMs?.toFixed(2) ?? '-'}), ${r.dispatches.toFixed(0)} dispatches/token, ${r.usPerDispatch.toFixed(1)} us/dispatch, ${r.readbacks} readbacks/token, ${r.replayed} of ${r.replayed + r.recorded} steps replayed`,
    });
    return { us, r };
  };
  const plain = await decodeRow(false);
  const { us: host, r } = await decodeRow(true);
  const train = await measureHostTrain(ctx.quick ? 3 : 5, ctx.reps);
  const trainHost = median(train.runs.map((c) => c.usPerDispatch));
  const t = train.runs.find((c) => c.usPerDispatch === trainHost)!;
  ctx.push({
    bench: 'train host',
    impl: 'huatuo',
    dtype: 'f32',
    shape: 'tiny LoRA T32',
    ms: t.ms,
    gflops: null,
    gbps: null,
    note: `host ${t.hostMs.toFixed(2)} ms/step (main thread CPU ${t.cpuMs?.toFixed(2) ?? '-'}), ${t.dispatches.toFixed(0)} dispatches/step, ${t.usPerDispatch.toFixed(1)} us/dispatch`,
  });
  return [
    `- Decode host work (greedy, hidden 256, 4 layers): ${host.toFixed(1)} us per dispatch with replayed steps (${plain.us.toFixed(1)} us with every step run), ${r.dispatches.toFixed(0)} dispatches and ${r.readbacks} readback per token (target <= 8 us): ${host <= 8 ? 'met' : '**missed**'}.`,
    `- Training step host work (tiny preset, LoRA, 32 tokens): ${trainHost.toFixed(1)} us per dispatch, ${t.dispatches.toFixed(0)} dispatches per step.`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const log = (s: string) => process.stdout.write(`${s}\n`);
  // No background matmul search beside the timed steps (it would dispatch and read back between them).
  process.env.HUATUO_MATMUL_TUNE ??= '0';
  await initWebGPU();
  const profile = process.argv.indexOf('--cpu-profile');
  const runs = arg('--runs', 5);
  const replayAt = process.argv.indexOf('--replay');
  const replay = replayAt < 0 || process.argv[replayAt + 1] !== 'off';
  const decode = await measureHostDecode(hostDecodeConfig(), arg('--tokens', 32), runs, profile >= 0 ? process.argv[profile + 1] : undefined, replay);
  for (const r of decode.runs) log(`decode ${r.tokens} tokens: ${formatCost(r, 'token')}; ${r.replayed} of ${r.replayed + r.recorded} steps replayed; tokens ${r.tokenHash.toString(16)}`);
  log(`decode (replay ${replay ? 'on' : 'off'}) median ${median(decode.runs.map((r) => r.usPerDispatch)).toFixed(1)} us/dispatch; logits ${decode.logitsHash.toString(16)}`);
  const steps = arg('--steps', 4);
  if (steps > 0) {
    const train = await measureHostTrain(steps, runs);
    for (const c of train.runs) log(`train ${steps} steps: ${formatCost(c, 'step')}`);
    log(`train median ${median(train.runs.map((c) => c.usPerDispatch)).toFixed(1)} us/dispatch; loss ${train.loss}`);
  }
  await destroyWebGPU();
  process.exit(0);
}
