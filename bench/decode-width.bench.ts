// Greedy decoding at LLaMA-7B width (hidden 4096, MLP 11008, 32 heads of 128) with a few layers: wall
// milliseconds, host milliseconds and dispatches per token, so that the per-dispatch cost of decoding
// shows at the width where the weights dominate the traffic. Weights are zeros (nothing to draw); the
// kernels read them all the same. Run alone:
// `node --conditions=source --import tsx bench/decode-width.bench.ts [--layers 2] [--tokens 8] [--runs 3] [--dtype f16] [--batch 1]
//  [--decode wide] [--fused on|off] [--pipelined on|off] [--small] [--sample] [--std 0] [--adapter] [--quantize int8|nf4]` (--decode wide: the wide
// matrix-vector kernel for every single-row product, as the search picks on some adapters; --fused: the fused decode
// products forced on or off, see setFusedLinearPreferred; --pipelined off: each step's ids read back before the next
// step is encoded, see setGreedyPipelined; --small: host.bench.ts's hidden-256 model instead; --sample: sampling
// with temperature 0.7, top-p 0.9, top-k 40 instead of greedy decoding; --std: the weights drawn with this standard
// deviation instead of zeros, so that the logits are not all tied; --adapter: an unmerged LoRA adapter of r 8 on
// q_proj and v_proj, HuaTuo's, its B drawn so that the update is not zero; --quantize: the base quantized, QLoRA's
// NF4 or int8, before the adapter is added).
import { decodeCandidates, destroyWebGPU, initWebGPU, keep, noGrad, randn, setMatmulVariant, type FloatDType } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, generate, quantizeModel, type GenerateOptions, type LlamaConfig, type LlamaModel } from '@huatuo/llama';
import { hostDecodeConfig } from './host.bench.js';
import { formatCost, HostClock, type HostCost, type HostSnapshot } from './host-clock.js';

/** LLaMA-7B's layer shapes with `layers` layers and a 32000-token vocabulary. */
export function widthConfig(layers: number): LlamaConfig {
  return configFromPreset('tiny', {
    hiddenSize: 4096,
    intermediateSize: 11008,
    numHiddenLayers: layers,
    numAttentionHeads: 32,
    numKeyValueHeads: 32,
    vocabSize: 32000,
  });
}

/** Sampling as chat often asks for it. */
export const SAMPLE_OPTIONS: GenerateOptions = { doSample: true, temperature: 0.7, topP: 0.9, topK: 40, seed: 5 };

/** Adds an unmerged LoRA adapter of r 8 (alpha 16) on q_proj and v_proj, its B drawn (PEFT starts it at zero). */
export function addDecodeAdapter(model: LlamaModel): void {
  applyLora(model, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] }, { seed: 5 });
  for (const l of model.linears()) {
    if (l.lora === null) continue;
    const zeros = l.lora.B;
    l.lora = { ...l.lora, B: keep(noGrad(() => randn([l.outFeatures, 8], { seed: 7 }))) };
    zeros.dispose();
  }
}

/**
 * Per-token costs of `runs` generations of `tokens` tokens (after one untimed run) from a `batch`-row
 * 8-token prompt: greedy, or as `options` say; weights zeros, or drawn with `std`; with an unmerged
 * adapter where `adapter` (see {@link addDecodeAdapter}); the base quantized where `quantize` says.
 */
export async function measureWidthDecode(
  config: LlamaConfig, dtype: FloatDType, batch: number, tokens: number, runs: number, options: GenerateOptions = {}, std = 0, adapter = false, quantize?: 'int8' | 'nf4',
): Promise<HostCost[]> {
  const model = createRandomLlama(config, { seed: 1, std, dtype });
  if (quantize !== undefined) await quantizeModel(model, quantize);
  if (adapter) addDecodeAdapter(model);
  const clock = new HostClock();
  const prompt = [1, 450, 4996, 17354, 1701, 29916, 432, 17204];
  const out: HostCost[] = [];
  try {
    for (let run = 0; run < runs + 1; run++) {
      const marks: HostSnapshot[] = [];
      // One token past the window (see host.bench.ts): `tokens` steps from the 1st token to the (tokens + 1)th.
      await generate(model, null, Array.from({ length: batch }, () => prompt), {
        ...options,
        maxNewTokens: tokens + 2,
        eosTokenIds: [],
        onToken: (e) => {
          if (e.prompt === 0) marks.push(clock.snapshot());
        },
      });
      if (run > 0) out.push(HostClock.cost(marks[0]!, marks[tokens]!, tokens));
    }
    return out;
  } finally {
    clock.dispose();
    model.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, fallback: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1]! : fallback;
  };
  process.env.HUATUO_MATMUL_TUNE ??= '0';
  const info = await initWebGPU();
  if (arg('--decode', 'default') === 'wide') setMatmulVariant(decodeCandidates(info).find((v) => v.wide && v.groups === undefined) ?? null);
  const fused = arg('--fused', 'default');
  if (fused !== 'default') {
    // Through the namespace, so that this file also runs against builds without the switch.
    const t: Record<string, unknown> = await import('@huatuo/tensor');
    const set = t.setFusedLinearPreferred as ((on: boolean | null) => void) | undefined;
    if (set === undefined) throw new Error('--fused: this build has no setFusedLinearPreferred');
    set(fused === 'on');
  }
  const pipelined = arg('--pipelined', 'default');
  if (pipelined !== 'default') {
    const l: Record<string, unknown> = await import('@huatuo/llama/internal');
    const set = l.setGreedyPipelined as ((on: boolean) => void) | undefined;
    if (set === undefined) throw new Error('--pipelined: this build has no setGreedyPipelined');
    set(pipelined === 'on');
  }
  const small = process.argv.includes('--small');
  const layers = Number(arg('--layers', small ? '4' : '2'));
  const dtype = arg('--dtype', 'f16') as FloatDType;
  const batch = Number(arg('--batch', '1'));
  const config = small ? { ...hostDecodeConfig(), numHiddenLayers: layers } : widthConfig(layers);
  const sample = process.argv.includes('--sample');
  const adapter = process.argv.includes('--adapter');
  const quantize = arg('--quantize', 'none');
  if (quantize !== 'none' && quantize !== 'int8' && quantize !== 'nf4') throw new Error(`--quantize ${quantize}: give int8 or nf4`);
  const runs = await measureWidthDecode(
    config, dtype, batch, Number(arg('--tokens', '8')), Number(arg('--runs', '3')), sample ? SAMPLE_OPTIONS : {}, Number(arg('--std', '0')), adapter, quantize === 'none' ? undefined : quantize,
  );
  const mode = (sample ? ' sampled' : '') + (quantize === 'none' ? '' : ` ${quantize}`) + (adapter ? ' adapter r8 q,v' : '');
  for (const r of runs) process.stdout.write(`decode${mode} C${config.hiddenSize} L${layers} ${dtype} B${batch}: ${formatCost(r, 'token')}\n`);
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
  process.stdout.write(`median ${ms[Math.floor(ms.length / 2)]!.toFixed(1)} ms/token\n`);
  await destroyWebGPU();
  process.exit(0);
}
