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

test('refuses a sequence whose activation exceeds the binding limit, naming --cutoff-len', () => {
  const config = resolveConfig({ '--cutoff-len': '8192' });
  const small = { maxBufferSize: 256 * 1024 ** 2, maxStorageBufferBindingSize: 128 * 1024 ** 2 };
  assert.throws(() => fitMicroBatch(sevenB, config, 'f16', small), (e: unknown) => e instanceof ConfigError && e.flag === '--cutoff-len');
});
