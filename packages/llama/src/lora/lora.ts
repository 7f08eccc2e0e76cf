// LoRA on a LlamaModel as PEFT does it: frozen base projections, trainable f32 A [r, in]
// (Kaiming-uniform) and B [out, r] (zeros) on the projections the config selects, output base(x) +
// B(A(dropout(x))) * scaling (alpha / r, or alpha / sqrt(r) with rsLoRA, per module); merging the update
// into the base weights and back. Browser-safe.

import { add, cast, keep, matmul, mul, noGrad, rand, slice, sub, tensor, tidy, zeros, type Tensor } from '@huatuo/tensor';
import { AdapterError, ModelError } from '../errors.js';
import type { Linear } from '../model/linear.js';
import { describeTargets, loraTargetModules, peftKey, resolveLoraConfig, type LoraConfig, type LoraTargetModule } from './lora-config.js';
import { loraModules } from './lora-targets.js';
import type { LlamaModel } from '../model/model.js';
import type { TensorToWrite } from '../formats/safetensors-write.js';

/** Options of {@link applyLora}. */
export interface ApplyLoraOptions {
  /** Seed of A's Kaiming-uniform initialization. Default 0. */
  readonly seed?: number;
}

type Layer = LlamaModel['layers'][number];

/** A decoder layer's projection by its Hugging Face name. */
function projection(layer: Layer, target: LoraTargetModule): Linear {
  const byTarget: Record<LoraTargetModule, Linear> = {
    q_proj: layer.qProj,
    k_proj: layer.kProj,
    v_proj: layer.vProj,
    o_proj: layer.oProj,
    gate_proj: layer.gateProj,
    up_proj: layer.upProj,
    down_proj: layer.downProj,
  };
  return byTarget[target];
}

/** The projections of a model that carry an adapter, with their layer and target name, in layer order. */
export function adaptedLinears(model: LlamaModel): { layer: number; target: LoraTargetModule; linear: Linear }[] {
  const out: { layer: number; target: LoraTargetModule; linear: Linear }[] = [];
  for (const layer of model.layers) {
    for (const target of loraTargetModules) {
      const linear = projection(layer, target);
      if (linear.lora !== null) out.push({ layer: layer.index, target, linear });
    }
  }
  return out;
}

/**
 * Attaches fresh LoRA adapters to the projections the config selects (replacing any adapter already
 * there; see {@link LoraConfig.targetModules}) and returns the trainable parameters: A with PEFT's
 * Kaiming-uniform init (bound 1 / sqrt(in)), B zeros, both f32, with each module's rank and scaling.
 * Base weights stay frozen: no gradient, no optimizer state, no copy.
 *
 * @example
 * const params = applyLora(model, { r: 8, alpha: 16, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] });
 * const opt = new AdamW(params, { lr: 3e-4 });
 */
export function applyLora(model: LlamaModel, options: Partial<LoraConfig> = {}, init: ApplyLoraOptions = {}): Tensor[] {
  const config = resolveLoraConfig(options);
  const modules = loraModules(config, model.layers.length);
  removeLora(model);
  model.loraConfig = config;
  let seed = (init.seed ?? 0) >>> 0;
  for (const m of modules) {
    const linear = projection(model.layers[m.layer]!, m.target);
    const bound = 1 / Math.sqrt(linear.inFeatures);
    seed = (Math.imul(seed, 0x2c9277b5) + 0xac564b05) >>> 0;
    const s = seed;
    const A = keep(noGrad(() => tidy(() => sub(mul(rand([m.r, linear.inFeatures], { seed: s }), 2 * bound), bound))));
    const B = keep(zeros([linear.outFeatures, m.r]));
    linear.lora = { A: A.requireGrad(), B: B.requireGrad(), scaling: m.scaling, dropout: config.dropout };
    linear.merged = false;
  }
  return model.loraParameters();
}

/** Detaches and frees the adapter (unmerging it first when merged). */
export function removeLora(model: LlamaModel): void {
  for (const { linear } of adaptedLinears(model)) {
    if (linear.merged) unmergeLinear(linear, model);
    linear.lora?.A.dispose();
    linear.lora?.B.dispose();
    linear.lora = null;
  }
  model.loraConfig = null;
}

/**
 * Replaces the adapter matrices with host values keyed by PEFT's names; `file` names the
 * source in errors. Every expected key must be present with its shape, and no other key.
 */
export function setAdapterWeights(model: LlamaModel, weights: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, file: string): void {
  const cfg = model.loraConfig;
  if (cfg === null) throw new ModelError('setAdapterWeights: the model has no adapter; call applyLora first');
  const expected = new Set<string>();
  const items = adaptedLinears(model);
  const targets = describeTargets(cfg.targetModules);
  for (const { layer, target, linear } of items) {
    const r = linear.lora!.A.shape[0]!;
    for (const [m, shape] of [
      ['A', [r, linear.inFeatures]],
      ['B', [linear.outFeatures, r]],
    ] as const) {
      const key = peftKey(layer, target, m);
      expected.add(key);
      const w = weights.get(key);
      if (w === undefined) throw new AdapterError(file, `tensor "${key}" is missing; adapter_config.json targets ${targets} with r ${r} on this module`);
      if (w.shape.length !== 2 || w.shape[0] !== shape[0] || w.shape[1] !== shape[1]) {
        throw new AdapterError(file, `tensor "${key}" has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}] for this model and r ${r} on this module`);
      }
    }
  }
  for (const key of weights.keys()) {
    if (!expected.has(key)) throw new AdapterError(file, `tensor "${key}" does not belong to an adapter of ${targets} on ${model.config.numHiddenLayers} layers; the adapter was trained for another model or config`);
  }
  for (const { layer, target, linear } of items) {
    const lora = linear.lora!;
    const A = keep(tensor(weights.get(peftKey(layer, target, 'A'))!.data, lora.A.shape)).requireGrad();
    const B = keep(tensor(weights.get(peftKey(layer, target, 'B'))!.data, lora.B.shape)).requireGrad();
    lora.A.dispose('replaced by loaded adapter weights');
    lora.B.dispose('replaced by loaded adapter weights');
    linear.lora = { ...lora, A, B };
  }
}

/** The adapter's tensors under PEFT's names (f32, read back when written). */
export function adapterTensorsToWrite(model: LlamaModel): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  for (const { layer, target, linear } of adaptedLinears(model)) {
    const lora = linear.lora!;
    out.push({ name: peftKey(layer, target, 'A'), dtype: 'F32', shape: lora.A.shape, data: () => lora.A.toArray() });
    out.push({ name: peftKey(layer, target, 'B'), dtype: 'F32', shape: lora.B.shape, data: () => lora.B.toArray() });
  }
  return out;
}

/** The update scaling * B A of one projection, [out, in] in the weights' dtype. */
export function loraDelta(linear: Linear, dtype: Tensor['dtype']): Tensor {
  const lora = linear.lora!;
  const delta = mul(matmul(lora.B, lora.A), lora.scaling); // [out, in]
  return delta.dtype === dtype ? delta : cast(delta, dtype);
}

function shiftParts(linear: Linear, model: LlamaModel, sign: 1 | -1): void {
  noGrad(() =>
    tidy(() => {
      const delta = loraDelta(linear, model.dtype);
      let start = 0;
      linear.parts = linear.parts.map((p) => {
        const rows = p.shape[0]!;
        const d = slice(delta, 0, start, start + rows);
        start += rows;
        const next = keep(sign > 0 ? add(p, d) : sub(p, d));
        p.dispose('replaced by merged weights');
        return next;
      });
    }),
  );
}

function unmergeLinear(linear: Linear, model: LlamaModel): void {
  shiftParts(linear, model, -1);
  linear.merged = false;
}

/**
 * Adds every adapter's update into its base weights (W += scaling * B A), so inference runs
 * at base speed; the adapter stays attached for `unmergeAdapter`. Quantized projections are left
 * as they are, their adapters still applied in forward (saveMergedModel merges them on the host).
 */
export function mergeAdapter(model: LlamaModel): void {
  if (model.loraConfig === null) throw new ModelError('mergeAdapter: the model has no adapter; call applyLora or loadAdapter first');
  for (const { linear } of adaptedLinears(model)) {
    // A quantized weight cannot hold the update exactly: its adapter keeps running beside it.
    if (linear.merged || linear.quantized !== null) continue;
    shiftParts(linear, model, 1);
    linear.merged = true;
  }
}

/** Subtracts merged updates from the base weights again (W -= scaling * B A). */
export function unmergeAdapter(model: LlamaModel): void {
  for (const { linear } of adaptedLinears(model)) if (linear.merged) unmergeLinear(linear, model);
}
