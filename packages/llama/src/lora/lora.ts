// LoRA on a LlamaModel as PEFT does it: frozen base projections, trainable f32 A [r, in]
// (Kaiming-uniform) and B [out, r] (zeros) on the projections the config selects, output base(x) +
// B(A(dropout(x))) * scaling (alpha / r, or alpha / sqrt(r) with rsLoRA, per module), and with DoRA a trainable
// magnitude m [out] rescaling each output row by m / ||W + scaling B A||; trained f32 copies of embed_tokens and
// lm_head in the base's place (PEFT's modules_to_save); merging the update into the base weights and back. Browser-safe.

import { add, cast, cat, copyInto, div, keep, matmul, mul, noGrad, rand, reshape, slice, sub, tensor, tidy, zeros, type Tensor } from '@huatuo/tensor';
import { AdapterError, ModelError } from '../errors.js';
import { Linear } from '../model/linear.js';
import { doraWeightNorm, rowSquares } from '../model/dora.js';
import { hostRows, readWeight, weightParts } from '../model/weights.js';
import {
  apiFieldNames, describeTargets, loraTargetModules, peftFieldNames, peftKey, peftMagnitudeKey, peftSavedEmbedKey, peftSavedLmHeadKey, resolveLoraConfig,
  type LoraConfig, type LoraFieldNames, type LoraTargetModule,
} from './lora-config.js';
import { loraModules, savedModules, type SavedModules } from './lora-targets.js';
import type { LlamaModel, SavedCopies } from '../model/model.js';
import type { TensorToWrite } from '../formats/safetensors-write.js';
import type { AdapterTokenizer } from './adapter-files.js';

/** The rows of the base's own embedding: config.json's vocab_size, whatever adapter is attached. */
function baseVocabSize(model: LlamaModel): number {
  return model.baseEmbedParts.reduce((rows, part) => rows + part.shape[0]!, 0);
}

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
 * Kaiming-uniform init (bound 1 / sqrt(in)), B zeros, both f32, with each module's rank and scaling; with
 * `useDora`, also DoRA's magnitude m [out] (f32), initialized as PEFT does to ||W + scaling B A|| per output
 * row (the row norms of W, B being zero), after each module's A and B in the returned list. With `modulesToSave`,
 * trained f32 copies of embed_tokens and lm_head, starting at the base's weights, take the base's place (PEFT's
 * ModulesToSaveWrapper); their parts come last in the list.
 * Base weights stay frozen: no gradient, no optimizer state.
 *
 * @example
 * const params = applyLora(model, { r: 8, alpha: 16, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] });
 * const opt = new AdamW(params, { lr: 3e-4 });
 */
export function applyLora(model: LlamaModel, options: Partial<LoraConfig> = {}, init: ApplyLoraOptions = {}): Tensor[] {
  const config = resolveLoraConfig(options);
  const saved = checkedSavedModules(model, config);
  attachAdapters(model, config, init);
  const limit = model.maxBindingBytes;
  model.savedModules = {
    embedTokens: saved.embedTokens ? trainableCopy(model.baseEmbedParts, limit) : null,
    lmHead: saved.lmHead ? headOf(trainableCopy(model.baseLmHead.parts, limit)) : null,
    tokenizer: null,
    tokenizerFiles: null,
  };
  return model.loraParameters();
}

/**
 * The modules `config.modulesToSave` selects on `model` (see savedModules), refused on a base whose lm_head is tied to
 * its embedding: PEFT copies each of the two modules on its own, untying them, which is not supported here.
 * `where` names the config's source in errors, `names` its fields.
 */
export function checkedSavedModules(model: LlamaModel, config: LoraConfig, where = 'LoraConfig', names: LoraFieldNames = apiFieldNames): SavedModules {
  const saved = savedModules(config, model.layers.length, where, names);
  if ((saved.embedTokens || saved.lmHead) && model.config.tieWordEmbeddings) {
    throw new AdapterError(
      where,
      `${names.modulesToSave} ${JSON.stringify(config.modulesToSave)} saves a trained copy of embed_tokens or lm_head, but this base ties lm_head to embed_tokens (config.json's tie_word_embeddings is true) and training or loading such copies of tied modules is not supported; leave ${names.modulesToSave} out`,
    );
  }
  return saved;
}

/** An f32 copy of a matrix held in row parts, re-split for f32 at `limit` bytes per part; each part a leaf that trains. */
function trainableCopy(parts: readonly Tensor[], limit: number): Tensor[] {
  const rows = parts.reduce((s, p) => s + p.shape[0]!, 0);
  const cols = parts[0]!.shape[1]!;
  let start = 0;
  return weightParts(rows, cols, 'f32', limit).map((n) => {
    const end = start + n;
    const copy = keep(zeros([n, cols]));
    noGrad(() =>
      tidy(() => {
        const pieces: Tensor[] = [];
        let at = 0;
        for (const p of parts) {
          const [from, to] = [Math.max(start, at), Math.min(end, at + p.shape[0]!)];
          if (from < to) pieces.push(slice(p, 0, from - at, to - at));
          at += p.shape[0]!;
        }
        const rowsOf = pieces.length === 1 ? pieces[0]! : cat(pieces, 0); // [n, cols]
        copyInto(copy, rowsOf.dtype === 'f32' ? rowsOf : cast(rowsOf, 'f32'));
      }),
    );
    start = end;
    return copy.requireGrad();
  });
}

/** The lm_head over trained f32 parts [V, C]. */
function headOf(parts: Tensor[]): Linear {
  const rows = parts.reduce((s, p) => s + p.shape[0]!, 0);
  return new Linear('lm_head', rows, parts[0]!.shape[1]!, parts);
}

/** Host values [rows, cols] uploaded as f32 parts split at `limit` bytes, each a leaf that trains. */
function uploadCopy(data: Float32Array, rows: number, cols: number, limit: number): Tensor[] {
  let start = 0;
  return weightParts(rows, cols, 'f32', limit).map((n) => {
    const part = keep(tensor(hostRows(data, start, n, cols), [n, cols])).requireGrad();
    start += n;
    return part;
  });
}

/** Frees the trained copies of embed_tokens and lm_head: the base's modules, vocabulary and tokenizer are used again. */
function dropSavedModules(model: LlamaModel): void {
  for (const p of model.savedModules.embedTokens ?? []) p.dispose('the adapter was removed or replaced');
  model.savedModules.lmHead?.dispose();
  model.savedModules = { embedTokens: null, lmHead: null, tokenizer: null, tokenizerFiles: null };
}

/** Attaches fresh LoRA adapters as {@link applyLora} does, without the trained copies of modules_to_save, which the caller sets. */
function attachAdapters(model: LlamaModel, config: LoraConfig, init: ApplyLoraOptions = {}): void {
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
    const magnitude = config.useDora ? keep(noGrad(() => tidy(() => doraWeightNorm(linear.parts, linear.quantized, rowSquares(linear.parts, linear.quantized), A, B, m.scaling)))) : null;
    linear.lora = { A: A.requireGrad(), B: B.requireGrad(), scaling: m.scaling, dropout: config.dropout, magnitude: magnitude?.requireGrad() ?? null };
    linear.merged = false;
  }
}

/**
 * Detaches and frees the adapter (unmerging it first when merged) and the trained copies of modules_to_save; an adapter
 * that brought its own vocabulary takes its tokenizer with it (`savedModules.tokenizer`), so the base's vocabulary and
 * tokenizer are in use again.
 */
export function removeLora(model: LlamaModel): void {
  for (const { linear } of adaptedLinears(model)) {
    if (linear.merged) unmergeLinear(linear, model);
    linear.lora?.A.dispose();
    linear.lora?.B.dispose();
    linear.lora?.magnitude?.dispose();
    linear.lora = null;
  }
  dropSavedModules(model);
  model.loraConfig = null;
}

const MAGNITUDE_WEIGHT = '.lora_magnitude_vector.weight';

/**
 * The weights with DoRA magnitudes under PEFT's saved name: `...lora_magnitude_vector`, as get_peft_model_state_dict
 * writes it, or `...lora_magnitude_vector.weight`, the module's own state-dict name (PEFT's loader accepts both).
 */
function magnitudeKeysNormalized(weights: ReadonlyMap<string, HostWeight>, file: string): ReadonlyMap<string, HostWeight> {
  if (![...weights.keys()].some((k) => k.endsWith(MAGNITUDE_WEIGHT))) return weights;
  const out = new Map<string, HostWeight>();
  for (const [k, w] of weights) {
    const key = k.endsWith(MAGNITUDE_WEIGHT) ? k.slice(0, -'.weight'.length) : k;
    if (out.has(key)) throw new AdapterError(file, `tensor "${key}" is given twice, with and without ".weight"; keep one of them`);
    out.set(key, w);
  }
  return out;
}

type HostWeight = { shape: readonly number[]; data: Float32Array };

/** A projection an adapter is loaded onto, with the rank and scaling its config gives it. */
interface AdapterSlot {
  readonly layer: number;
  readonly target: LoraTargetModule;
  readonly linear: Linear;
  readonly r: number;
  readonly scaling: number;
}

/** An adapter's weights checked against a model and config, on the host: nothing of the model changed yet. */
export interface CheckedAdapter {
  readonly config: LoraConfig;
  /** The vocabulary the model has once the adapter is attached: its trained embed_tokens' rows, else the base's. */
  readonly vocabSize: number;
  /** The base's own vocabulary (config.json's vocab_size), whatever adapter is attached now. */
  readonly baseVocabSize: number;
  readonly slots: readonly AdapterSlot[];
  readonly weights: ReadonlyMap<string, HostWeight>;
  readonly copies: ReadonlyMap<string, HostWeight>;
}

/**
 * Checks host weights keyed by PEFT's names against the projections `slots` and the modules_to_save of `cfg`:
 * every expected key present with its shape, and no other key. `file` names the source in errors.
 */
function checkedAdapterWeights(model: LlamaModel, cfg: LoraConfig, slots: readonly AdapterSlot[], given: ReadonlyMap<string, HostWeight>, file: string): CheckedAdapter {
  const weights = magnitudeKeysNormalized(given, file);
  const expected = new Set<string>();
  const targets = describeTargets(cfg.targetModules);
  for (const { layer, target, linear, r } of slots) {
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
    if (!cfg.useDora) continue;
    const key = peftMagnitudeKey(layer, target);
    expected.add(key);
    const w = weights.get(key);
    if (w === undefined) throw new AdapterError(file, `tensor "${key}" is missing; adapter_config.json sets use_dora, whose magnitude vector every adapted module has`);
    if (w.shape.length !== 1 || w.shape[0] !== linear.outFeatures) {
      throw new AdapterError(file, `tensor "${key}" has shape [${w.shape.join(', ')}], expected [${linear.outFeatures}] (one magnitude per output of this module)`);
    }
  }
  const copies = savedCopiesOf(model, cfg, weights, file);
  for (const key of copies.keys()) expected.add(key);
  for (const key of weights.keys()) {
    if (expected.has(key)) continue;
    if (key === peftSavedEmbedKey || key === peftSavedLmHeadKey) {
      const module = key === peftSavedEmbedKey ? 'embed_tokens' : 'lm_head';
      throw new AdapterError(file, `tensor "${key}" is a trained copy of ${module} (PEFT's modules_to_save), but adapter_config.json's modules_to_save does not name ${module}; add "${module}" to it if the adapter was trained so`);
    }
    if (!cfg.useDora && key.endsWith('.lora_magnitude_vector')) {
      throw new AdapterError(file, `tensor "${key}" is a DoRA magnitude vector, but the adapter's config does not set use_dora: true; set it in adapter_config.json if the adapter was trained with DoRA`);
    }
    throw new AdapterError(file, `tensor "${key}" does not belong to an adapter of ${targets} on ${model.config.numHiddenLayers} layers; the adapter was trained for another model or config`);
  }
  const baseVocab = baseVocabSize(model);
  const vocabSize = copies.get(peftSavedEmbedKey)?.shape[0] ?? baseVocab;
  return { config: cfg, vocabSize, baseVocabSize: baseVocab, slots, weights, copies };
}

/**
 * Checks an adapter's host weights (keyed by PEFT's names) against the model and the adapter's config, changing
 * nothing: every module the config selects must have its tensors with their shapes, and no other tensor be given.
 * `file` names the source in errors. {@link attachCheckedAdapter} then attaches it.
 */
export function checkAdapter(model: LlamaModel, config: LoraConfig, given: ReadonlyMap<string, HostWeight>, file: string): CheckedAdapter {
  checkedSavedModules(model, config, file, peftFieldNames);
  const slots = loraModules(config, model.layers.length).map((m) => ({ layer: m.layer, target: m.target, linear: projection(model.layers[m.layer]!, m.target), r: m.r, scaling: m.scaling }));
  return checkedAdapterWeights(model, config, slots, given, file);
}

/** The adapter's tensors on the device, each a leaf that trains; on failure, those already uploaded are freed. */
function uploadAdapter(model: LlamaModel, checked: CheckedAdapter, tokenizer: AdapterTokenizer | null): { loras: NonNullable<Linear['lora']>[]; copies: SavedCopies } {
  const uploaded: Tensor[] = [];
  const upload = (data: Float32Array, shape: readonly number[]) => {
    const t = keep(tensor(data, shape)).requireGrad();
    uploaded.push(t);
    return t;
  };
  try {
    const { config, slots, weights, copies } = checked;
    const loras = slots.map(({ layer, target, linear, r, scaling }) => ({
      A: upload(weights.get(peftKey(layer, target, 'A'))!.data, [r, linear.inFeatures]),
      B: upload(weights.get(peftKey(layer, target, 'B'))!.data, [linear.outFeatures, r]),
      scaling,
      dropout: config.dropout,
      magnitude: config.useDora ? upload(weights.get(peftMagnitudeKey(layer, target))!.data, [linear.outFeatures]) : null,
    }));
    const C = model.config.hiddenSize;
    const limit = model.maxBindingBytes;
    const copy = (key: string) => {
      const w = copies.get(key);
      if (w === undefined) return null;
      const parts = uploadCopy(w.data, w.shape[0]!, C, limit);
      uploaded.push(...parts);
      return parts;
    };
    const lmHead = copy(peftSavedLmHeadKey);
    return {
      loras,
      copies: { embedTokens: copy(peftSavedEmbedKey), lmHead: lmHead === null ? null : headOf(lmHead), tokenizer: tokenizer?.tokenizer ?? null, tokenizerFiles: tokenizer?.files ?? null },
    };
  } catch (err) {
    for (const t of uploaded) t.dispose('the adapter failed to load');
    throw err;
  }
}

/**
 * Attaches an adapter {@link checkAdapter} checked, replacing any adapter: its tensors are uploaded first, and only
 * once all are on the device is the previous adapter removed, so a failure leaves the model as it was. `tokenizer` is
 * the one of the adapter's own vocabulary with its files (null where the base's applies), kept in `savedModules` while
 * it is attached.
 */
export function attachCheckedAdapter(model: LlamaModel, checked: CheckedAdapter, tokenizer: AdapterTokenizer | null = null): void {
  if (tokenizer !== null && checked.vocabSize === checked.baseVocabSize) {
    throw new ModelError(`attachCheckedAdapter: the adapter keeps the base's vocabulary of ${checked.vocabSize} pieces, whose tokenizer is the base's; pass no tokenizer`);
  }
  const { loras, copies } = uploadAdapter(model, checked, tokenizer);
  removeLora(model);
  model.loraConfig = checked.config;
  checked.slots.forEach(({ linear }, i) => {
    linear.lora = loras[i]!;
    linear.merged = false;
  });
  model.savedModules = copies;
}

/**
 * Replaces the adapter matrices (and DoRA magnitudes) with host values keyed by PEFT's names; `file` names the
 * source in errors. Every expected key must be present with its shape, and no other key; on an error the
 * adapter is left as it was. The tokenizer of the adapter's own vocabulary stays where the vocabulary does.
 */
export function setAdapterWeights(model: LlamaModel, given: ReadonlyMap<string, HostWeight>, file: string): void {
  const cfg = model.loraConfig;
  if (cfg === null) throw new ModelError('setAdapterWeights: the model has no adapter; call applyLora first');
  const slots = adaptedLinears(model).map(({ layer, target, linear }) => ({ layer, target, linear, r: linear.lora!.A.shape[0]!, scaling: linear.lora!.scaling }));
  const checked = checkedAdapterWeights(model, cfg, slots, given, file);
  const { tokenizer, tokenizerFiles } = model.savedModules;
  const keepTokenizer = tokenizer !== null && checked.vocabSize === model.config.vocabSize;
  const { loras, copies } = uploadAdapter(model, checked, null);
  slots.forEach(({ linear }, i) => {
    const lora = linear.lora!;
    lora.A.dispose('replaced by loaded adapter weights');
    lora.B.dispose('replaced by loaded adapter weights');
    lora.magnitude?.dispose('replaced by loaded adapter weights');
    linear.lora = { ...lora, A: loras[i]!.A, B: loras[i]!.B, magnitude: loras[i]!.magnitude };
  });
  dropSavedModules(model);
  model.savedModules = keepTokenizer ? { ...copies, tokenizer, tokenizerFiles: tokenizerFiles ?? null } : copies;
}

/**
 * The trained copies of embed_tokens and lm_head the adapter's config saves, checked against the model: [V', C]
 * each. An adapter trained on a resized vocabulary (PEFT users call resize_token_embeddings with the adapter's
 * tokenizer first) brings its own V' when it saves both modules, which then replace the base's entirely; a
 * single saved module must have the base's rows.
 */
function savedCopiesOf(model: LlamaModel, cfg: LoraConfig, weights: ReadonlyMap<string, HostWeight>, file: string): Map<string, HostWeight> {
  const saved = checkedSavedModules(model, cfg, file, peftFieldNames);
  const C = model.config.hiddenSize;
  const baseRows = baseVocabSize(model);
  const out = new Map<string, HostWeight>();
  for (const [on, key, module] of [
    [saved.embedTokens, peftSavedEmbedKey, 'embed_tokens'],
    [saved.lmHead, peftSavedLmHeadKey, 'lm_head'],
  ] as const) {
    if (!on) continue;
    const w = weights.get(key);
    if (w === undefined) throw new AdapterError(file, `tensor "${key}" is missing; adapter_config.json's modules_to_save names ${module}, whose trained copy the adapter's weights hold`);
    if (w.shape.length !== 2 || w.shape[1] !== C || w.shape[0]! < 1) {
      throw new AdapterError(file, `tensor "${key}" has shape [${w.shape.join(', ')}], expected [vocabulary, ${C}] (the hidden size of this model)`);
    }
    out.set(key, w);
  }
  const embed = out.get(peftSavedEmbedKey);
  const head = out.get(peftSavedLmHeadKey);
  if (embed !== undefined && head !== undefined) {
    if (embed.shape[0] !== head.shape[0]) {
      throw new AdapterError(file, `the trained embed_tokens has ${embed.shape[0]} rows but lm_head ${head.shape[0]}; both should have the adapter's vocabulary size`);
    }
    return out;
  }
  for (const [key, w] of out) {
    if (w.shape[0] === baseRows) continue;
    const other = key === peftSavedEmbedKey ? 'lm_head' : 'embed_tokens';
    throw new AdapterError(
      file,
      `tensor "${key}" has ${w.shape[0]} rows, but the base's vocabulary has ${baseRows} (config.json's vocab_size): the adapter was trained on a resized vocabulary, and its ${other} is not saved, so its resized rows are unknown; PEFT needs the same base resized by resize_token_embeddings, whose new ${other} rows are initialized at random, which cannot be reproduced: add "${other}" to modules_to_save when training such an adapter`,
    );
  }
  return out;
}

/** The adapter's tensors under PEFT's names (f32, read back when written). */
export function adapterTensorsToWrite(model: LlamaModel): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  for (const { layer, target, linear } of adaptedLinears(model)) {
    const lora = linear.lora!;
    out.push({ name: peftKey(layer, target, 'A'), dtype: 'F32', shape: lora.A.shape, data: () => lora.A.toArray() });
    out.push({ name: peftKey(layer, target, 'B'), dtype: 'F32', shape: lora.B.shape, data: () => lora.B.toArray() });
    const m = lora.magnitude;
    if (m) out.push({ name: peftMagnitudeKey(layer, target), dtype: 'F32', shape: m.shape, data: () => m.toArray() });
  }
  const { embedTokens, lmHead } = model.savedModules;
  const C = model.config.hiddenSize;
  for (const [name, parts] of [
    [peftSavedEmbedKey, embedTokens],
    [peftSavedLmHeadKey, lmHead?.parts ?? null],
  ] as const) {
    if (parts !== null) out.push({ name, dtype: 'F32', shape: [parts.reduce((s, p) => s + p.shape[0]!, 0), C], data: () => readWeight(parts) });
  }
  return out;
}

/** The update scaling * B A of one projection, [out, in] in the weights' dtype. */
export function loraDelta(linear: Linear, dtype: Tensor['dtype']): Tensor {
  const lora = linear.lora!;
  const delta = mul(matmul(lora.B, lora.A), lora.scaling); // [out, in]
  return delta.dtype === dtype ? delta : cast(delta, dtype);
}

/**
 * DoRA's factor m / ||W + scaling B A|| per output row, f32 [out], outside autograd; null for a plain LoRA
 * adapter. A merged DoRA weight is this factor times (W + scaling B A) (PEFT's merge). Read it before merging.
 *
 * @example
 * const s = doraMergeScale(model.layers[0].qProj); // [out], or null without DoRA
 */
export function doraMergeScale(linear: Linear): Tensor | null {
  const m = linear.lora?.magnitude;
  if (m === undefined || m === null) return null;
  return noGrad(() => div(m, linear.doraNorm()));
}

function shiftParts(linear: Linear, model: LlamaModel, sign: 1 | -1): void {
  noGrad(() =>
    tidy(() => {
      const delta = loraDelta(linear, model.dtype);
      // DoRA: W' = s (W + delta) with s = m / ||W + delta|| kept for unmerging (W = W' / s - delta), as PEFT does.
      const scale = sign > 0 ? doraMergeScale(linear) : linear.mergedScale;
      const rowScale = scale === null ? null : reshape(scale.dtype === model.dtype ? scale : cast(scale, model.dtype), [scale.size, 1]); // [out, 1]
      let start = 0;
      linear.parts = linear.parts.map((p) => {
        const rows = p.shape[0]!;
        const d = slice(delta, 0, start, start + rows);
        const s = rowScale === null ? null : slice(rowScale, 0, start, start + rows);
        start += rows;
        let next: Tensor;
        if (sign > 0) next = s === null ? add(p, d) : mul(add(p, d), s);
        else next = s === null ? sub(p, d) : sub(div(p, s), d);
        p.dispose('replaced by merged weights');
        return keep(next);
      });
      if (sign > 0 && scale !== null) linear.mergedScale = keep(scale);
      if (sign < 0) {
        linear.mergedScale?.dispose('the adapter was unmerged');
        linear.mergedScale = null;
      }
    }),
  );
}

function unmergeLinear(linear: Linear, model: LlamaModel): void {
  shiftParts(linear, model, -1);
  linear.merged = false;
}

/**
 * Adds every adapter's update into its base weights (W += scaling * B A; with DoRA W = (m / ||W + scaling B A||) (W + scaling B A)), so inference runs
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

/** Subtracts merged updates from the base weights again (W -= scaling * B A; with DoRA W = W / s - scaling B A with the merge's factor s). */
export function unmergeAdapter(model: LlamaModel): void {
  for (const { linear } of adaptedLinears(model)) if (linear.merged) unmergeLinear(linear, model);
}
