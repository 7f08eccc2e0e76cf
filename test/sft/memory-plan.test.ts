// The training run's memory plan: the largest micro-batch that fits --gpu-memory and the binding
// limit (the rest accumulated), and refusals that name the flag to change. No GPU or weights needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { llamaPresets } from '@huatuo/llama';
import { ConfigError, fitMicroBatch, resolveConfig, trainingPlan } from '@huatuo/sft';

const GiB = 1024 ** 3;
const limits = (gib: number) => ({ maxBufferSize: 4 * GiB, maxStorageBufferBindingSize: 2 * GiB, totalMemory: gib * GiB });
const sevenB = llamaPresets['llama-7b'];

test('chooses the largest power-of-two micro-batch whose plan fits --gpu-memory', () => {
  const config = resolveConfig({ '--quantize': 'nf4', '--gradient-checkpointing': 'true' });
  const mb = fitMicroBatch(sevenB, config, 'f16', limits(4.5));
  assert.ok(trainingPlan(sevenB, config, 'f16', mb).total <= 4.5 * GiB);
  assert.ok(trainingPlan(sevenB, config, 'f16', mb * 2).total > 4.5 * GiB, `micro-batch ${mb} is the largest that fits`);
  assert.equal(fitMicroBatch(sevenB, config, 'f16', limits(80)), 16);
});

test("LLaMA-7B with HuaTuo's recipe and --quantize int8 plans under 10 GB: checkpointing comes with the quantized base", () => {
  const config = resolveConfig({ '--quantize': 'int8', '--micro-batch': '4' });
  assert.ok(trainingPlan(sevenB, config, 'f16', 4).total <= 10e9, `${trainingPlan(sevenB, config, 'f16', 4).total} bytes`);
  const without = resolveConfig({ '--quantize': 'int8', '--micro-batch': '4', '--gradient-checkpointing': 'false' });
  assert.ok(trainingPlan(sevenB, without, 'f16', 4).total > 10e9, 'without checkpointing it does not fit 10 GB at micro-batch 4');
  assert.equal(fitMicroBatch(sevenB, resolveConfig({ '--quantize': 'int8', '--gradient-checkpointing': 'false', '--gpu-memory': '9.3' }), 'f16', limits(9.3)), 1, 'but --gpu-memory picks a micro-batch that fits');
});

test('refuses an f16 LLaMA-7B in 8 GiB naming --gpu-memory and suggesting --quantize and --gradient-checkpointing', () => {
  const config = resolveConfig({});
  assert.throws(
    () => fitMicroBatch(sevenB, config, 'f16', limits(8)),
    (e: unknown) => e instanceof ConfigError && e.flag === '--gpu-memory' && /--quantize int8 or nf4/.test(e.message) && /--gradient-checkpointing/.test(e.message),
  );
});

test('refuses an explicit --micro-batch that cannot fit, naming it, when a smaller one would', () => {
  const config = resolveConfig({ '--quantize': 'nf4', '--gradient-checkpointing': 'true', '--micro-batch': '128' });
  assert.throws(() => fitMicroBatch(sevenB, config, 'f16', limits(8)), (e: unknown) => e instanceof ConfigError && e.flag === '--micro-batch' && /smaller/.test(e.message));
});

test('splits an MLP activation over the binding limit, and refuses only hidden states over it, naming --cutoff-len', () => {
  const small = { maxBufferSize: 256 * 1024 ** 2, maxStorageBufferBindingSize: 128 * 1024 ** 2 };
  // [2, 8192, 11008] f16 in the MLP is 344 MiB and runs in chunks; the hidden states [2, 8192, 4096] f16 are 128 MiB.
  assert.equal(fitMicroBatch(sevenB, resolveConfig({ '--cutoff-len': '8192' }), 'f16', small), 2);
  assert.throws(
    () => fitMicroBatch(sevenB, resolveConfig({ '--cutoff-len': '32768' }), 'f16', small),
    (e: unknown) => e instanceof ConfigError && e.flag === '--cutoff-len' && /hidden states \[1, 32768, 4096\] f16 needs 256\.0 MiB/.test(e.message),
  );
});
