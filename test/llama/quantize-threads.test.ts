// loadLlama({ quantize, quantizeThreads }): quantizing on worker threads stores the bytes the main thread
// stores, for F16 and F32 checkpoints, stops its threads when the load ends, and a corrupt projection met
// while other projections are being quantized fails with the main thread's error and leaves no thread running.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32ToF16Bits, initWebGPU, type HostQuantized } from '@huatuo/tensor';
import { SafetensorsError, configFromPreset, expectedWeights, loadLlama, serializeSafetensors, toHfConfigJson, type LlamaConfig } from '@huatuo/llama';
import { seededValues } from '../tensor/helpers.js';

/** Worker threads alive in this process (each holds one MessagePort handle). */
const liveWorkers = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;

// Three layers of 7 projections: [64, 64], [32, 64] (grouped k and v), [172, 64] and [64, 172], whose NF4
// blocks straddle rows.
const config: LlamaConfig = configFromPreset('tiny', { numHiddenLayers: 3, numKeyValueHeads: 2, vocabSize: 96 });

/** A folder with config.json and a model.safetensors of seeded weights in `dtype`; `corrupt` gets `bad` at index 7. */
async function writeFolder(dtype: 'F16' | 'F32', corrupt?: string, bad = Number.NaN): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `llama-qthreads-${dtype}-`));
  const tensors = expectedWeights(config).map((spec, i) => {
    const values = seededValues(spec.shape.reduce((a, b) => a * b, 1), 100 + i, 0.05);
    if (spec.name === corrupt) values[7] = bad;
    return { name: spec.name, dtype, shape: spec.shape, data: dtype === 'F16' ? f32ToF16Bits(values) : values };
  });
  await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
  await writeFile(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(config)));
  return dir;
}

/** Every projection's quantized bytes after loading `dir` with `threads`, and the most workers seen during the load. */
async function quantizedLoad(dir: string, format: 'int8' | 'nf4', threads: number): Promise<{ weights: Map<string, HostQuantized>; workers: number }> {
  let workers = 0;
  const model = await loadLlama(dir, { quantize: format, quantizeThreads: threads, onProgress: () => (workers = Math.max(workers, liveWorkers())) });
  try {
    const weights = new Map<string, HostQuantized>();
    for (const l of model.linears()) weights.set(l.name, await l.quantized!.download());
    return { weights, workers };
  } finally {
    model.dispose();
  }
}

describe('quantizing on worker threads while loading', () => {
  const dirs = new Map<string, string>();
  before(async () => {
    await initWebGPU();
    dirs.set('F16', await writeFolder('F16'));
    dirs.set('F32', await writeFolder('F32'));
    dirs.set('corrupt F16', await writeFolder('F16', 'model.layers.2.mlp.gate_proj.weight'));
    dirs.set('corrupt F32', await writeFolder('F32', 'model.layers.1.self_attn.o_proj.weight', Number.NEGATIVE_INFINITY));
  });
  after(async () => {
    for (const dir of dirs.values()) await rm(dir, { recursive: true, force: true });
  });

  for (const [dtype, format] of [['F16', 'nf4'], ['F16', 'int8'], ['F32', 'nf4']] as const) {
    it(`${dtype} ${format}: 3 threads store the bytes 1 thread stores, and stop when the load ends`, async () => {
      const idle = liveWorkers();
      const one = await quantizedLoad(dirs.get(dtype)!, format, 1);
      const three = await quantizedLoad(dirs.get(dtype)!, format, 3);
      assert.equal(one.workers, idle, 'quantizeThreads 1 starts no worker');
      assert.equal(three.workers, idle + 3, 'quantizeThreads 3 runs 3 workers');
      assert.equal(liveWorkers(), idle, 'no worker is left after the load');
      assert.equal(three.weights.size, 21);
      assert.deepEqual([...three.weights.keys()], [...one.weights.keys()]);
      for (const [name, want] of one.weights) {
        const got = three.weights.get(name)!;
        for (const [key, field] of Object.entries(want)) {
          const mine = (got as unknown as Record<string, unknown>)[key];
          if (ArrayBuffer.isView(field)) assert.deepEqual(mine, field, `${name}: ${key}`);
          else assert.ok(Object.is(mine, field), `${name}: ${key} is ${String(mine)} on 3 threads, ${String(field)} on 1`);
        }
      }
    });
  }

  const corrupt = [
    ['F16', 'nf4', /model\.safetensors: tensor "model\.layers\.2\.mlp\.gate_proj\.weight": element 7 is NaN and 1 of/],
    ['F32', 'int8', /model\.safetensors: tensor "model\.layers\.1\.self_attn\.o_proj\.weight": element 7 is -Infinity and 1 of/],
  ] as const;
  for (const [dtype, format, message] of corrupt) {
    it(`a corrupt ${dtype} projection (${format}) fails the load with the main thread's error, naming file and tensor, and stops the workers`, async () => {
      const idle = liveWorkers();
      const failure = async (threads: number) => {
        let workers = 0;
        const load = loadLlama(dirs.get(`corrupt ${dtype}`)!, { quantize: format, quantizeThreads: threads, onProgress: () => (workers = Math.max(workers, liveWorkers())) });
        const err = await load.then(
          (m) => {
            m.dispose();
            return undefined;
          },
          (e: unknown) => e,
        );
        return { err, workers };
      };
      const want = await failure(1);
      const got = await failure(3);
      assert.ok(want.err instanceof SafetensorsError && got.err instanceof SafetensorsError, `SafetensorsErrors, got ${String(want.err)} and ${String(got.err)}`);
      assert.match(want.err.message, message);
      assert.equal(got.err.message, want.err.message);
      assert.equal(got.workers, idle + 3, 'the workers were running when the load failed');
      assert.equal(liveWorkers(), idle, 'no worker is left after the failed load');
    });
  }

  it('quantizeThreads must be a whole number of at least 1, named in the error', async () => {
    for (const bad of [0, 2.5]) {
      await assert.rejects(loadLlama(dirs.get('F16')!, { quantize: 'nf4', quantizeThreads: bad }), new RegExp(`quantizeThreads is ${bad}; give a whole number of at least 1`));
    }
  });
});
