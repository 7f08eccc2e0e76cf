// The same LoRA training step in PyTorch on the CPU (bench/torch_step.py, Debian's python3-torch),
// beside the project's step on the same shapes: tokens/s of both and their ratio. Skipped with
// --no-torch or when `python3 -c "import torch"` fails (HUATUO_PYTHON names another Python).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './kernels.bench.js';
import { trainConfigs, type TrainResults } from './train.bench.js';

/** The Python that runs bench/torch_step.py: HUATUO_PYTHON, else `python3` on the PATH. */
const PYTHON = process.env.HUATUO_PYTHON ?? 'python3';
const script = join(dirname(fileURLToPath(import.meta.url)), 'torch_step.py');

/** Whether PyTorch imports under that Python. */
export function hasTorch(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

interface TorchResult {
  tokens_per_s: number;
  ms_per_step: number;
  params: number;
  threads: number;
  torch: string;
}

/** PyTorch rows (impl 'pytorch-cpu') for the configs of bench/train.bench.ts; returns summary lines. */
export async function benchTorch(ctx: BenchContext, ours: TrainResults): Promise<string[]> {
  if (!hasTorch()) {
    ctx.log(`pytorch-cpu: skipped (${PYTHON} -c "import torch" failed)`);
    return [`- PyTorch step: skipped, torch does not import under ${PYTHON}.`];
  }
  const lines: string[] = [];
  for (const tc of trainConfigs(ctx.quick)) {
    const c = tc.config;
    const args = [
      script, '--vocab', c.vocabSize, '--dim', c.hiddenSize, '--layers', c.numHiddenLayers, '--heads', c.numAttentionHeads,
      '--kv-heads', c.numKeyValueHeads, '--inter', c.intermediateSize, '--seq', tc.seq, '--steps', tc.params > 5e7 ? 2 : ctx.reps,
    ].map(String);
    const run = spawnSync(PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
    const last = run.stdout.trim().split('\n').pop() ?? '';
    if (run.status !== 0 || !last.startsWith('{')) {
      ctx.log(`pytorch-cpu ${tc.name} failed: ${run.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      continue;
    }
    const r = JSON.parse(last) as TorchResult;
    const mine = ours.get(tc.name);
    const ratio = mine ? mine.tokensPerSec / r.tokens_per_s : NaN;
    const shape = `${tc.name} (${(tc.params / 1e6).toFixed(0)}M) B1 T${tc.seq}`;
    const note = `${r.tokens_per_s.toFixed(0)} tokens/s; torch ${r.torch}, ${r.threads} threads${mine ? `; huatuo/pytorch ${ratio.toFixed(2)}x` : ''}${tc.note ? `; ${tc.note}` : ''}`;
    ctx.push({ bench: 'llama train step', impl: 'pytorch-cpu', dtype: 'f32', shape, ms: r.ms_per_step, gflops: null, gbps: null, note });
    if (mine) {
      lines.push(`- Training step ${shape}: huatuo ${mine.tokensPerSec.toFixed(0)} tokens/s vs PyTorch CPU ${r.tokens_per_s.toFixed(0)} tokens/s (${r.threads} threads) = ${ratio.toFixed(2)}x.`);
    }
  }
  return lines;
}
