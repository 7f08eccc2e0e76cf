// Model weights: the Hugging Face names and shapes a config implies, assembling a LlamaModel
// from per-tensor uploads (splitting matrices over the adapter's binding limit along their
// rows), seeded random models, and reading weights back for saving. Browser-safe.

import {
  QuantizedWeight,
  dequantizeHost,
  deviceInfo,
  keep,
  ones,
  quantizeHost,
  randn,
  tensor,
  toArray,
  zeros,
  type FloatDType,
  type QuantFormat,
  type Tensor,
} from '@huatuo/tensor';
import { hasQkvBias, type LlamaConfig } from '../formats/config.js';
import { f32ToF16 } from '../formats/dtype-convert.js';
import { ModelError } from '../errors.js';
import { Linear } from './linear.js';
import { loraTargetModules, modulePath, type LoraTargetModule } from '../lora/lora-config.js';
import { projectionShape, splitRows } from './tensor-sizes.js';
import { DecoderLayer } from './decoder-layer.js';
import { LlamaModel } from './model.js';
import type { TensorToWrite } from '../formats/safetensors-write.js';

/** A weight the config implies: Hugging Face name and shape. */
export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** The projections with a `.bias` under `config`: q, k and v for Qwen2, none for LLaMA and Mistral. */
export function biasedProjections(config: LlamaConfig): readonly LoraTargetModule[] {
  return hasQkvBias(config) ? ['q_proj', 'k_proj', 'v_proj'] : [];
}

/** Every weight of a LlamaForCausalLM (or Qwen2ForCausalLM) checkpoint for `config`, in Hugging Face's order. */
export function expectedWeights(config: LlamaConfig): WeightSpec[] {
  const C = config.hiddenSize;
  const biased = biasedProjections(config);
  const specs: WeightSpec[] = [{ name: 'model.embed_tokens.weight', shape: [config.vocabSize, C] }];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    specs.push({ name: `model.layers.${i}.input_layernorm.weight`, shape: [C] });
    for (const t of loraTargetModules) {
      const shape = projectionShape(config, t);
      specs.push({ name: `${modulePath(i, t)}.weight`, shape });
      if (biased.includes(t)) specs.push({ name: `${modulePath(i, t)}.bias`, shape: [shape[0]] });
    }
    specs.push({ name: `model.layers.${i}.post_attention_layernorm.weight`, shape: [C] });
  }
  specs.push({ name: 'model.norm.weight', shape: [C] });
  if (!config.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [config.vocabSize, C] });
  return specs;
}

/** Options shared by the model constructors. */
export interface ModelOptions {
  /** Dtype of the base weights: 'f32' (default) or 'f16' (needs shader-f16). */
  readonly dtype?: FloatDType;
  /**
   * Largest bytes of one weight buffer; larger matrices are split along their rows. Default the
   * adapter's maxStorageBufferBindingSize (and maxBufferSize when smaller).
   */
  readonly maxBindingBytes?: number;
}

/** The binding limit of the open device, or `override`. */
export function bindingLimit(override?: number): number {
  if (override !== undefined) return override;
  const info = deviceInfo();
  if (info === null) throw new ModelError('no WebGPU device yet: call `await initWebGPU()` before creating a model');
  return Math.min(info.maxStorageBufferBindingSize, info.maxBufferSize);
}

/** Row counts of the parts a [rows, cols] matrix of `dtype` is stored in. */
export function weightParts(rows: number, cols: number, dtype: FloatDType, limit: number): number[] {
  return splitRows(rows, cols * (dtype === 'f16' ? 2 : 4), limit);
}

/**
 * How the frozen projections of the decoder layers are stored: 'none' (the model's dtype), or quantized
 * ('int8': per-row absmax; 'nf4': QLoRA's 4-bit NormalFloat, double-quantized) and dequantized inside
 * the matmul kernels. Norms, embeddings and the lm_head keep the model's dtype.
 */
export type Quantization = 'none' | QuantFormat;

/**
 * Assembles a model; `matrix(name, rows)` gives a [rows_i, cols] part per entry of `rows`
 * and `vector(name)` a vector (a norm's [C], a bias's [out]); `quantized(name)`, when given, the quantized weight of a
 * decoder projection (then `matrix` is not called for it). Every tensor it returns is kept out of tidy scopes.
 */
export function assembleModel(
  config: LlamaConfig,
  dtype: FloatDType,
  limit: number,
  matrix: (spec: WeightSpec, rows: readonly number[]) => Tensor[],
  vector: (spec: WeightSpec) => Tensor,
  quantized?: (spec: WeightSpec) => QuantizedWeight,
): LlamaModel {
  const specs = new Map(expectedWeights(config).map((s) => [s.name, s]));
  const mat = (name: string): Tensor[] => {
    const spec = specs.get(name)!;
    const [rows, cols] = spec.shape as [number, number];
    return matrix(spec, weightParts(rows, cols, dtype, limit)).map((t) => keep(t));
  };
  const vec = (name: string): Tensor => keep(vector(specs.get(name)!));
  const biased = biasedProjections(config);
  const linear = (i: number, t: LoraTargetModule): Linear => {
    const [out, inp] = projectionShape(config, t);
    const name = `${modulePath(i, t)}.weight`;
    const l = quantized !== undefined ? new Linear(modulePath(i, t), out, inp, [], quantized(specs.get(name)!)) : new Linear(modulePath(i, t), out, inp, mat(name));
    if (biased.includes(t)) l.bias = vec(`${modulePath(i, t)}.bias`);
    return l;
  };
  const embed = mat('model.embed_tokens.weight');
  const layers: DecoderLayer[] = [];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    layers.push(
      new DecoderLayer(
        i,
        vec(`model.layers.${i}.input_layernorm.weight`),
        linear(i, 'q_proj'),
        linear(i, 'k_proj'),
        linear(i, 'v_proj'),
        linear(i, 'o_proj'),
        vec(`model.layers.${i}.post_attention_layernorm.weight`),
        linear(i, 'gate_proj'),
        linear(i, 'up_proj'),
        linear(i, 'down_proj'),
      ),
    );
  }
  const norm = vec('model.norm.weight');
  const head = config.tieWordEmbeddings ? embed : mat('lm_head.weight');
  const lmHead = new Linear('lm_head', config.vocabSize, config.hiddenSize, head);
  const model = new LlamaModel(config, dtype, embed, layers, norm, lmHead);
  model.maxBindingBytes = limit;
  return model;
}

/** Options of {@link createRandomLlama}. */
export interface RandomModelOptions extends ModelOptions {
  /** Seed of the weights (same seed, same model). Default 0. */
  readonly seed?: number;
  /** Standard deviation of the normal weights; default the config's initializerRange. Norm weights are 1. 0 gives zeros (fast: nothing is drawn). */
  readonly std?: number;
}

/**
 * A model with seeded random weights (normal, std `initializerRange`, as Hugging Face
 * initializes LLaMA; norms at 1, biases at 0), for demos, tests and training from scratch.
 *
 * @example
 * const model = createRandomLlama(configFromPreset('tiny'), { seed: 1 });
 */
export function createRandomLlama(config: LlamaConfig, options: RandomModelOptions = {}): LlamaModel {
  const dtype = options.dtype ?? 'f32';
  const std = options.std ?? config.initializerRange;
  let seed = (options.seed ?? 0) >>> 0;
  const nextSeed = () => (seed = (Math.imul(seed, 0x2c9277b5) + 0xac564b05) >>> 0);
  return assembleModel(
    config,
    dtype,
    bindingLimit(options.maxBindingBytes),
    (spec, rows) => rows.map((r) => (std === 0 ? zeros([r, spec.shape[1]!], { dtype }) : randn([r, spec.shape[1]!], { seed: nextSeed(), dtype }).mul(std))),
    (spec) => (spec.name.endsWith('.bias') ? zeros(spec.shape, { dtype }) : ones(spec.shape, { dtype })),
  );
}

/** Uploads host data as a model weight of `dtype` (f32 values or f16 bit patterns). */
export function uploadWeight(data: Float32Array | Uint16Array, shape: readonly number[], dtype: FloatDType): Tensor {
  return tensor(data, shape, { dtype });
}

/** Rows [start, start + rows) of a row-major [*, cols] host array. */
export function hostRows<A extends Float32Array | Uint16Array>(data: A, start: number, rows: number, cols: number): A {
  return data.subarray(start * cols, (start + rows) * cols) as A;
}

/** Concatenated host copy (f32) of a weight's parts. */
export async function readWeight(parts: readonly Tensor[]): Promise<Float32Array> {
  const arrays = await Promise.all(parts.map((p) => toArray(p)));
  const out = new Float32Array(arrays.reduce((s, a) => s + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a as Float32Array, at);
    at += a.length;
  }
  return out;
}

/** Host copy (f32, row-major [out, in]) of a projection's frozen weight, dequantized when quantized. */
export async function readLinearWeight(linear: Linear): Promise<Float32Array> {
  if (linear.quantized === null) return readWeight(linear.parts);
  return dequantizeHost(await linear.quantized.download());
}

/**
 * Quantizes the frozen projections of every decoder layer in place, one at a time (read back, quantized on
 * the host, uploaded, the unquantized parts freed), e.g. for a model made by createRandomLlama. Adapters stay.
 *
 * @example
 * const model = createRandomLlama(configFromPreset('tiny'), { seed: 1 });
 * await quantizeModel(model, 'nf4');
 */
export async function quantizeModel(model: LlamaModel, format: QuantFormat): Promise<void> {
  for (const linear of model.linears()) {
    if (linear.quantized !== null) throw new ModelError(`quantizeModel: ${linear.name} is already quantized (${linear.quantized.format})`);
    if (linear.merged) throw new ModelError(`quantizeModel: ${linear.name} has an adapter merged into it; unmergeAdapter first`);
    const host = await readWeight(linear.parts);
    linear.quantized = QuantizedWeight.upload(quantizeHost(host, linear.outFeatures, linear.inFeatures, format), linear.name);
    for (const p of linear.parts) p.dispose('replaced by its quantized weight');
    linear.parts = [];
  }
}

/**
 * The model's weights as Hugging Face tensors to write (read back from the GPU one at a time,
 * when the writer reaches each), in the model's dtype: F32 or F16. A quantized model's weights are
 * dequantized and written as F16 (the format the base was loaded from cannot be recovered).
 */
export function modelTensorsToWrite(model: LlamaModel): TensorToWrite[] {
  const f16 = model.dtype === 'f16' || model.quantization !== 'none';
  const st = f16 ? 'F16' : 'F32';
  const write = (f32: Float32Array) => (f16 ? f32ToF16(f32) : f32);
  const convert = async (parts: readonly Tensor[]) => write(await readWeight(parts));
  const byName = new Map<string, readonly Tensor[]>();
  byName.set('model.embed_tokens.weight', model.embedParts);
  for (const layer of model.layers) {
    byName.set(`model.layers.${layer.index}.input_layernorm.weight`, [layer.inputNorm]);
    byName.set(`model.layers.${layer.index}.post_attention_layernorm.weight`, [layer.postNorm]);
    for (const l of layer.linears()) {
      if (l.quantized === null) byName.set(`${l.name}.weight`, l.parts);
      if (l.bias !== null) byName.set(`${l.name}.bias`, [l.bias]);
    }
  }
  const quantized = new Map(model.linears().filter((l) => l.quantized !== null).map((l) => [`${l.name}.weight`, l]));
  byName.set('model.norm.weight', [model.norm]);
  if (!model.config.tieWordEmbeddings) byName.set('lm_head.weight', model.lmHead.parts);
  return expectedWeights(model.config).map((spec) => ({
    name: spec.name,
    dtype: st,
    shape: spec.shape,
    data: async () => {
      const q = quantized.get(spec.name);
      return q === undefined ? convert(byName.get(spec.name)!) : write(await readLinearWeight(q));
    },
  }));
}
