// GPU-sized rows (run when the adapter can bind 1 GiB and the run is not --quick): matmul at the LLaMA-7B
// training products and 4096^3 in f16 and f32; the rank-8 LoRA products as tuned, unsplit and split along k; a LoRA step at LLaMA-7B dimensions (batch 8 x 256 tokens,
// f16 base) with 2 and 4 layers, extrapolated to 32 and labelled so; greedy decode at 2 and 4 layers.
// When python3 imports torch with CUDA, the same work runs in PyTorch (+ transformers and PEFT when they
// import) on the same GPU in the same run (bench/torch_step.py).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, clipGradNorm, deviceInfo, profile, readyAttention, startScope, tensor, type FloatDType, type Tensor } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, generate, type LlamaConfig } from '@huatuo/llama';
import type { BenchContext } from './kernels.bench.js';
import { benchLoraProducts, benchMatmul, loraProducts, type Shape } from './matmul.bench.js';
import { timeMedian } from './timing.js';
import { tokenIds } from './train.bench.js';

/** The Python that runs bench/torch_step.py: HUATUO_PYTHON, else `python3` on the PATH. */
const PYTHON = process.env.HUATUO_PYTHON ?? 'python3';
const script = join(dirname(fileURLToPath(import.meta.url)), 'torch_step.py');
const GiB = 1 << 30;
const SHAPES: Shape[] = [
  { M: 2048, K: 4096, N: 4096, name: '2048x4096x4096' },
  { M: 2048, K: 4096, N: 11008, name: '2048x4096x11008' },
  { M: 2048, K: 11008, N: 4096, name: '2048x11008x4096' },
  { M: 4096, K: 4096, N: 4096, name: '4096x4096x4096' },
];
const [BATCH, SEQ] = [8, 256];

type TorchRow = Record<string, number | string>;

/**
 * Runs bench/torch_step.py's suite on CUDA in one process (matmuls, then a LoRA step and greedy decoding
 * at 2, 4 and 32 layers, with transformers + PEFT); its rows by item (`matmul f16 2048,4096,4096`,
 * `step 32`, `decode 4`). Rows it could not produce are missing, with the reason logged.
 */
function torchSuite(ctx: BenchContext): Map<string, TorchRow> {
  const mnk = SHAPES.map((s) => `${s.M},${s.K},${s.N}`).join(';');
  const args = [script, '--device', 'cuda', '--mode', 'suite', '--suite-mnk', mnk, '--suite-layers', '2,4,32', '--steps', '5'];
  args.push('--dim', '4096', '--heads', '32', '--kv-heads', '32', '--inter', '11008', '--seq', String(SEQ), '--batch', String(BATCH));
  const run = spawnSync(PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const rows = new Map<string, TorchRow>();
  for (const line of (run.stdout ?? '').split('\n').filter((l) => l.startsWith('{'))) {
    const row = JSON.parse(line) as TorchRow;
    rows.set(String(row.item), row);
  }
  if (run.status !== 0) ctx.log(`pytorch-cuda suite stopped: ${(run.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  return rows;
}

const imports = (code: string) => spawnSync(PYTHON, ['-c', code], { stdio: 'ignore' }).status === 0;

/** GPU rows and their summary lines; skipped (with a line saying why) on adapters that are not GPU-sized. */
export async function benchGpu(ctx: BenchContext): Promise<string[]> {
  const info = deviceInfo()!;
  if (ctx.quick || info.maxStorageBufferBindingSize < GiB) {
    const why = ctx.quick ? '--quick' : `the adapter binds ${info.maxStorageBufferBindingSize >> 20} MiB, not a GPU-sized 1 GiB`;
    ctx.log(`GPU rows (LLaMA-7B matmuls, LoRA step, decode): skipped (${why})`);
    return [`- GPU rows (matmul 2048x4096x4096 ..., LLaMA-7B LoRA step, decode): skipped (${why}).`];
  }
  const cuda = imports('import torch; assert torch.cuda.is_available()');
  const hf = cuda && imports('import transformers, peft');
  const lines: string[] = [];
  // PyTorch first, in its own process, so that neither holds GPU memory while the other runs.
  const torch = hf ? torchSuite(ctx) : new Map<string, TorchRow>();
  if (cuda && !hf) ctx.log('pytorch-cuda: skipped (transformers or peft does not import)');
  // PyTorch's model rows are recorded now, so that a run stopped during ours keeps them.
  for (const layers of [2, 4, 32]) {
    const t = torch.get(`step ${layers}`);
    if (t) ctx.push({ bench: 'llama-7b LoRA step', impl: 'pytorch-cuda', dtype: 'f16', shape: `L${layers} B${BATCH} T${SEQ}`, ms: Number(t.ms_per_step), gflops: null, gbps: null, note: `transformers + PEFT; ${Number(t.tokens_per_s).toFixed(0)} tokens/s; peak ${Number(t.peak_gib).toFixed(1)} GiB; ${t.gpu}` });
  }
  for (const layers of [2, 4, 32]) {
    const t = torch.get(`decode ${layers}`);
    if (t) ctx.push({ bench: 'llama-7b greedy decode', impl: 'pytorch-cuda', dtype: 'f16', shape: `L${layers} B1`, ms: Number(t.ms_per_token), gflops: null, gbps: null, note: `transformers generate; ${t.gpu}` });
  }
  for (const dtype of ['f16', 'f32'] as FloatDType[]) {
    if (dtype === 'f16' && !info.features.has('shader-f16')) continue;
    for (const s of SHAPES) {
      const m = await benchMatmul(s, dtype, 3);
      if (!m) continue;
      const tflops = (2 * s.M * s.K * s.N) / m.ms / 1e9;
      ctx.push({ bench: 'matmul', impl: 'huatuo', dtype, shape: s.name, ms: m.ms, gflops: tflops * 1000, gbps: null, ...(m.note ? { note: m.note } : {}) });
      const t = torch.get(`matmul ${dtype} ${s.M},${s.K},${s.N}`);
      if (t) {
        const theirs = Number(t.tflops);
        ctx.push({ bench: 'matmul', impl: 'pytorch-cuda', dtype, shape: s.name, ms: Number(t.ms), gflops: theirs * 1000, gbps: null, note: `${t.gpu}; TF32 off` });
        lines.push(`- matmul ${dtype} ${s.name}: ${tflops.toFixed(1)} TFLOP/s = ${((tflops / theirs) * 100).toFixed(0)} % of PyTorch's ${theirs.toFixed(1)}.`);
      }
    }
  }
  for (const dtype of ['f16', 'f32'] as FloatDType[]) {
    if (dtype === 'f16' && !info.features.has('shader-f16')) continue;
    const r = await benchLoraProducts(dtype, 5, 1024);
    const shape = `x A^T, dy B, dh^T x; T ${loraProducts.tokens}, C ${loraProducts.width}, r ${loraProducts.rank}`;
    const splitNote = `${r.kernel} split along k (1024 workgroups): ${r.slices.join(', ')} slices`;
    for (const [how, ms] of [['as tuned', r.tuned], [`${r.kernel} unsplit`, r.unsplit], [splitNote, r.split]] as const) {
      ctx.push({ bench: 'LoRA products', impl: 'huatuo', dtype, shape, ms, gflops: null, gbps: null, note: how });
    }
    lines.push(`- LoRA products (${dtype}, ${shape}): ${r.tuned.toFixed(2)} ms as tuned; ${r.kernel} ${r.unsplit.toFixed(2)} unsplit, ${r.split.toFixed(2)} split along k (${r.slices.join(', ')} slices).`);
  }
  const step: number[] = [];
  const decode: number[] = [];
  for (const layers of [2, 4]) {
    const r = await loraStep(ctx, layers);
    step.push(r.ms);
    ctx.push({ bench: 'llama-7b LoRA step', impl: 'huatuo', dtype: 'f16', shape: `L${layers} B${BATCH} T${SEQ}`, ms: r.ms, gflops: null, gbps: null, note: r.note });
    const d = await decodeStep(layers);
    decode.push(d);
    ctx.push({ bench: 'llama-7b greedy decode', impl: 'huatuo', dtype: 'f16', shape: `L${layers} B1`, ms: d, gflops: null, gbps: null, note: 'ms per token (33 tokens minus 1, over 32)' });
  }
  const perLayer = (step[1]! - step[0]!) / 2;
  const at32 = step[0]! + 30 * perLayer;
  const tokens = (BATCH * SEQ * 1000) / at32;
  ctx.push({ bench: 'llama-7b LoRA step', impl: 'huatuo', dtype: 'f16', shape: `L32 B${BATCH} T${SEQ} (extrapolated)`, ms: at32, gflops: null, gbps: null, note: `extrapolated from 2 and 4 layers: ${perLayer.toFixed(1)} ms a layer; ${tokens.toFixed(0)} tokens/s` });
  const decode32 = decode[0]! + 15 * (decode[1]! - decode[0]!);
  ctx.push({ bench: 'llama-7b greedy decode', impl: 'huatuo', dtype: 'f16', shape: 'L32 B1 (extrapolated)', ms: decode32, gflops: null, gbps: null, note: `extrapolated from 2 and 4 layers; ${(1000 / decode32).toFixed(0)} tokens/s` });
  lines.push(`- LLaMA-7B LoRA step (B${BATCH} T${SEQ}, f16 base): ${step.map((ms) => ms.toFixed(0)).join(' / ')} ms at 2 / 4 layers; extrapolated to 32 layers ${at32.toFixed(0)} ms = ${tokens.toFixed(0)} tokens/s.`);
  lines.push(`- Greedy decode (f16, batch 1): ${decode.map((ms) => ms.toFixed(1)).join(' / ')} ms a token at 2 / 4 layers; extrapolated to 32 layers ${decode32.toFixed(1)} ms = ${(1000 / decode32).toFixed(0)} tokens/s.`);
  if (torch.size > 0) {
    const t = torch.get('step 32');
    if (t) lines.push(`- PyTorch LoRA step, 32 layers (transformers + PEFT): ${Number(t.ms_per_step).toFixed(0)} ms = ${Number(t.tokens_per_s).toFixed(0)} tokens/s; huatuo (extrapolated) / PyTorch = ${((tokens / Number(t.tokens_per_s)) * 100).toFixed(0)} %.`);
    const d32 = torch.get('decode 32');
    if (d32) lines.push(`- transformers generate, 32 layers: ${Number(d32.ms_per_token).toFixed(1)} ms a token; huatuo (extrapolated) is ${(Number(d32.ms_per_token) / decode32).toFixed(2)}x its speed.`);
  } else {
    lines.push(`- PyTorch on the GPU: skipped (${!cuda ? `${PYTHON} does not import torch with CUDA` : 'transformers + PEFT do not import, or the suite failed'}).`);
  }
  return lines;
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

/** One LoRA step of a LLaMA-7B-shaped model with `layers` layers, f16 base (see loraStepRunner). */
async function loraStep(ctx: BenchContext, layers: number): Promise<{ ms: number; note: string }> {
  const { run, dispose } = loraStepRunner(configFromPreset('llama-7b', { numHiddenLayers: layers }), BATCH, SEQ);
  const ms = await timeMedian(run, 3, 1, `LoRA step L${layers}`);
  const { report } = await profile(run);
  const top = report.kernels.slice(0, 4).map((k) => `${k.label} ${(k.ms ?? 0).toFixed(1)} ms`).join(', ');
  dispose();
  ctx.log(`LoRA step L${layers}: ${ms.toFixed(1)} ms; kernels ${report.gpuMs.toFixed(1)} ms (${report.source}); top ${top}`);
  return { ms, note: `kernels ${report.gpuMs.toFixed(0)} ms of the profiled step; top: ${top}` };
}

/** Milliseconds per token of greedy decoding (batch 1, f16) with `layers` layers: (33 tokens - 1) / 32. */
async function decodeStep(layers: number): Promise<number> {
  const config = configFromPreset('llama-7b', { numHiddenLayers: layers });
  const model = createRandomLlama(config, { seed: 1, dtype: 'f16' });
  const prompt = Array.from(tokenIds(16, config.vocabSize, 5));
  const gen = (n: number) => async () => generate(model, null, [prompt], { maxNewTokens: n, eosTokenIds: [] });
  const one = await timeMedian(gen(1), 3, 1, `decode L${layers} 1`);
  const many = await timeMedian(gen(33), 3, 1, `decode L${layers} 33`);
  model.dispose();
  return (many - one) / 32;
}
