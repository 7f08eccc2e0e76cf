// best_of's decoding: `--best-of` sampled sequences of one prompt (seeds s, s + 1, ... as serve's best_of runs
// them) with each sequence's cumulative log-probability (generate's cumulativeLogprob, which best_of ranks by):
// wall, host and GPU-wait milliseconds per token and what is read back, on host.bench.ts's hidden-256 model with
// a 32000-token vocabulary, where each step's logits are 128 KB a sequence. Run alone, and against another build
// of the repository by running its copy alternately:
// `node --conditions=source --import tsx bench/best-of.bench.ts [--best-of 4] [--tokens 16] [--runs 3] [--dtype f32|f16] [--ranked off] [--logprobs 5] [--greedy]`
// (--ranked off: the same sampling without cumulativeLogprob, the cost of plain n choices; --logprobs k: each
// token's log-probability with the k most likely tokens of its step, as a completion's logprobs k; --greedy:
// greedy decoding (temperature 0) instead of sampling, with the same penalty, where each sum adds the picks'
// log-softmax at the maximum).
import { destroyWebGPU, initWebGPU, runtimeStats, type FloatDType } from '@huatuo/tensor';
import { createRandomLlama, generate } from '@huatuo/llama';
import { hostDecodeConfig } from './host.bench.js';
import { formatCost, HostClock, type HostCost, type HostSnapshot } from './host-clock.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};

process.env.HUATUO_MATMUL_TUNE ??= '0';
await initWebGPU();
const bestOf = Number(arg('--best-of', '4'));
const tokens = Number(arg('--tokens', '16'));
const runs = Number(arg('--runs', '3'));
const dtype = arg('--dtype', 'f32') as FloatDType;
const ranked = arg('--ranked', 'on') === 'on';
const logprobs = process.argv.includes('--logprobs') ? Number(arg('--logprobs', '')) : null;
const greedy = process.argv.includes('--greedy');
const config = { ...hostDecodeConfig(), vocabSize: 32000 };
const model = createRandomLlama(config, { seed: 1, std: 0.05, dtype });
const prompt = [1, 450, 4996, 17354, 1701, 29916, 432, 17204];
const clock = new HostClock();
const costs: HostCost[] = [];
let readBack = 0;
for (let run = 0; run < runs + 1; run++) {
  const marks: HostSnapshot[] = [];
  const before = runtimeStats().readbackBytes;
  // One token past the window: `tokens` steps from the 1st token to the (tokens + 1)th.
  const out = await generate(model, null, Array.from({ length: bestOf }, () => prompt), {
    ...(greedy ? {} : { doSample: true, temperature: 0.8, topK: 40, topP: 0.9, seeds: Array.from({ length: bestOf }, (_, i) => 5 + i) }),
    presencePenalty: 0.4,
    maxNewTokens: tokens + 2,
    eosTokenIds: [],
    cumulativeLogprob: ranked,
    ...(logprobs === null ? {} : { logprobs }),
    onToken: (e) => {
      if (e.prompt === 0) marks.push(clock.snapshot());
    },
  });
  if (ranked && out.some((g) => !Number.isFinite(g.cumulativeLogprob))) throw new Error('a sequence has no cumulative log-probability');
  if (run > 0) {
    costs.push(HostClock.cost(marks[0]!, marks[tokens]!, tokens));
    readBack = runtimeStats().readbackBytes - before;
  }
}
const label = `best_of ${bestOf}${greedy ? ' greedy' : ''}${ranked ? ' ranked' : ''}${logprobs === null ? '' : ` logprobs ${logprobs}`} C${config.hiddenSize} L${config.numHiddenLayers} V${config.vocabSize} ${dtype}`;
for (const c of costs) process.stdout.write(`${label}: ${formatCost(c, 'token')}\n`);
const ms = costs.map((c) => c.ms).sort((a, b) => a - b);
process.stdout.write(`median ${ms[Math.floor(ms.length / 2)]!.toFixed(1)} ms/token, ${(readBack / 1024).toFixed(1)} KiB read back a generation of ${tokens + 2} tokens\n`);
clock.dispose();
model.dispose();
await destroyWebGPU();
process.exit(0);
