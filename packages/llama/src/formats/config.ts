// LLaMA hyperparameters: Hugging Face `config.json` (model_type "llama", "mistral": LLaMA's
// architecture with a sliding attention window, or "qwen2": LLaMA with biases on q, k and v) parsed into a typed, validated `LlamaConfig`, written
// back out, and named presets. Browser-safe.

import { ModelConfigError, shown } from '../errors.js';
import { parseRopeScaling, ropeScalingJson, type LlamaRopeScaling } from './rope-scaling.js';

/** Weight dtypes a Hugging Face config can name in `torch_dtype`. */
export type TorchDType = 'float32' | 'float16' | 'bfloat16';

/** The Hugging Face architectures read as LLaMA: `model_type` "llama", "mistral" and "qwen2". */
export type LlamaModelType = 'llama' | 'mistral' | 'qwen2';

/** LLaMA hyperparameters in camelCase; HF `config.json` field names in comments. */
export interface LlamaConfig {
  /**
   * The checkpoint's architecture (`model_type`): "llama", "mistral" (LLaMA with `sliding_window`), or "qwen2"
   * (LLaMA with a bias on q_proj, k_proj and v_proj; see {@link hasQkvBias}).
   */
  readonly modelType: LlamaModelType;
  /** C, the residual width (`hidden_size`). */
  readonly hiddenSize: number;
  /** The SwiGLU MLP's inner width (`intermediate_size`). */
  readonly intermediateSize: number;
  /** Number of decoder blocks (`num_hidden_layers`). */
  readonly numHiddenLayers: number;
  /** H, query heads (`num_attention_heads`). */
  readonly numAttentionHeads: number;
  /** Key/value heads (`num_key_value_heads`); equal to H without grouped-query attention. Divides H. */
  readonly numKeyValueHeads: number;
  /**
   * D, the per-head width (`head_dim`; C / H where absent). q_proj is [H D, C], k_proj and v_proj
   * [Hkv D, C], o_proj [C, H D]: H D may differ from C (Mistral-Nemo: D 128, C 5120, H 32).
   */
  readonly headDim: number;
  /** Epsilon inside RMSNorm's square root (`rms_norm_eps`). */
  readonly rmsNormEps: number;
  /** RoPE base frequency (`rope_theta`). */
  readonly ropeTheta: number;
  /** RoPE frequency scaling (`rope_scaling`: linear, dynamic, llama3 or yarn), or null for plain RoPE. */
  readonly ropeScaling: LlamaRopeScaling | null;
  /** V, vocabulary size (`vocab_size`). */
  readonly vocabSize: number;
  /** Longest sequence the position encoding is meant for (`max_position_embeddings`). */
  readonly maxPositionEmbeddings: number;
  /**
   * The sliding attention window of every layer (Mistral's `sliding_window`; Qwen2's where `use_sliding_window`
   * makes every layer slide): query i sees keys i - slidingWindow < j <= i. null for full causal attention
   * (always for LLaMA).
   */
  readonly slidingWindow: number | null;
  /** Whether `lm_head` shares the embedding matrix (`tie_word_embeddings`). */
  readonly tieWordEmbeddings: boolean;
  /** Beginning-of-sequence token id (`bos_token_id`). */
  readonly bosTokenId: number;
  /** End-of-sequence token id (`eos_token_id`; the first when HF gives a list). */
  readonly eosTokenId: number;
  /** Every end-of-sequence id (HF allows a list). */
  readonly eosTokenIds: readonly number[];
  /**
   * The end-of-sequence ids of the folder's `generation_config.json`, where it gives them: what Hugging
   * Face's generate stops at instead of config.json's (e.g. Llama-3-Instruct's <|eot_id|>). Not part of
   * config.json; set by {@link withGenerationConfig}.
   */
  readonly generationEosTokenIds?: readonly number[];
  /** Padding token id (`pad_token_id`), or undefined when the model has none. */
  readonly padTokenId: number | undefined;
  /** MLP activation (`hidden_act`); LLaMA uses SiLU. */
  readonly hiddenAct: 'silu';
  /** Standard deviation of the normal init of fresh weights (`initializer_range`). */
  readonly initializerRange: number;
  /** Dtype the weights are stored in (`torch_dtype`). */
  readonly torchDtype: TorchDType;
}

/** Named presets: `llama-7b` (HF's LLaMA-7B) and `tiny` (for demos and tests). */
export type LlamaPresetName = 'llama-7b' | 'tiny';

// huggyllama/llama-7b's config.json.
const LLAMA_7B: LlamaConfig = Object.freeze({
  modelType: 'llama',
  hiddenSize: 4096,
  intermediateSize: 11008,
  numHiddenLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 32,
  headDim: 128,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScaling: null,
  vocabSize: 32000,
  maxPositionEmbeddings: 2048,
  slidingWindow: null,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
  eosTokenIds: Object.freeze([2]),
  padTokenId: 0,
  hiddenAct: 'silu',
  initializerRange: 0.02,
  torchDtype: 'float16',
});

/** Preset hyperparameters. */
export const llamaPresets: Readonly<Record<LlamaPresetName, LlamaConfig>> = Object.freeze({
  'llama-7b': LLAMA_7B,
  // LLaMA-7B at a width small enough to train on a laptop: LLaMA's vocabulary, so the real tokenizer
  // fits, and grouped-query attention (2 KV heads for 4 query heads) to exercise that path.
  tiny: Object.freeze({
    ...LLAMA_7B,
    hiddenSize: 64,
    intermediateSize: 172,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    maxPositionEmbeddings: 512,
    torchDtype: 'float32',
  }),
});

/** Whether q_proj, k_proj and v_proj have a `.bias` (Qwen2's attention; LLaMA's and Mistral's projections have none). */
export function hasQkvBias(config: Pick<LlamaConfig, 'modelType'>): boolean {
  return config.modelType === 'qwen2';
}

type Json = Record<string, unknown>;

function field(file: string, json: Json, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(json, key) ? json[key] : undefined;
}

function positiveInt(file: string, json: Json, key: string, fallback?: number): number {
  const v = field(file, json, key);
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelConfigError(file, key, 'is missing; expected a positive integer');
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ModelConfigError(file, key, `expected a positive integer, got ${shown(v)}`);
  }
  return v;
}

function positiveNumber(file: string, json: Json, key: string, fallback: number): number {
  const v = field(file, json, key);
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(file, key, `expected a positive number, got ${shown(v)}`);
  }
  return v;
}

/** An `eos_token_id` field: an id or a non-empty list of ids. */
function eosIds(file: string, raw: unknown, vocabSize: number): number[] {
  if (Array.isArray(raw)) {
    if (raw.length === 0) throw new ModelConfigError(file, 'eos_token_id', 'expected a token id or a non-empty list of ids, got []');
    return raw.map((v) => tokenId(file, 'eos_token_id', v, vocabSize));
  }
  return [tokenId(file, 'eos_token_id', raw, vocabSize)];
}

/**
 * `config` with the end-of-sequence ids of a `generation_config.json` (already JSON-decoded), which
 * Hugging Face's generate stops at in place of config.json's; unchanged when the file gives no
 * eos_token_id. Throws ModelConfigError naming `file` for a malformed one.
 * @example
 * const config = withGenerationConfig(parseLlamaConfig(cfg, 'config.json'), gen, 'generation_config.json');
 */
export function withGenerationConfig(config: LlamaConfig, json: unknown, file: string): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ModelConfigError(file, undefined, 'expected a JSON object of generation settings');
  const raw = (json as Json)['eos_token_id'];
  if (raw === undefined || raw === null) return config;
  return Object.freeze({ ...config, generationEosTokenIds: Object.freeze(eosIds(file, raw, config.vocabSize)) });
}

function tokenId(file: string, key: string, v: unknown, vocabSize: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v >= vocabSize) {
    throw new ModelConfigError(file, key, `expected a token id in [0, ${vocabSize}), got ${shown(v)}`);
  }
  return v;
}

/**
 * Parses a Hugging Face LLaMA, Mistral or Qwen2 `config.json` (already JSON-decoded; model_type "llama", "qwen2",
 * "mistral" or absent, read as "llama"). Absent fields take HF's LlamaConfig defaults:
 * num_key_value_heads = num_attention_heads, rms_norm_eps 1e-6, rope_theta 10000, rope_scaling null,
 * max_position_embeddings 2048, tie_word_embeddings false, bos 1, eos 2, hidden_act "silu",
 * initializer_range 0.02, torch_dtype float32; for Mistral, MistralConfig's: num_key_value_heads 8,
 * max_position_embeddings 131072, sliding_window 4096 (null: no window); for Qwen2, Qwen2Config's:
 * num_key_value_heads 32, max_position_embeddings 32768, use_sliding_window false (no window), and
 * bos_token_id and eos_token_id required. Throws ModelConfigError naming
 * `fileName` and the field for anything missing, malformed, or unsupported.
 *
 * @example
 * const cfg = parseLlamaConfig(JSON.parse(text), 'models/llama-7b/config.json');
 * cfg.headDim; // 128
 */
export function parseLlamaConfig(json: unknown, fileName: string): LlamaConfig {
  const file = fileName;
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ModelConfigError(file, undefined, 'expected a JSON object of LLaMA hyperparameters');
  }
  const j = json as Json;
  const modelType = field(file, j, 'model_type') ?? 'llama';
  if (modelType !== 'llama' && modelType !== 'mistral' && modelType !== 'qwen2') {
    throw new ModelConfigError(file, 'model_type', `expected "llama", "mistral" or "qwen2", got ${shown(modelType)}; only LLaMA, Mistral and Qwen2 checkpoints are supported`);
  }
  const mistral = modelType === 'mistral';
  const qwen2 = modelType === 'qwen2';
  const hiddenSize = positiveInt(file, j, 'hidden_size');
  const intermediateSize = positiveInt(file, j, 'intermediate_size');
  const numHiddenLayers = positiveInt(file, j, 'num_hidden_layers');
  const numAttentionHeads = positiveInt(file, j, 'num_attention_heads');
  // MistralConfig's and Qwen2Config's defaults where the field is absent: 8 and 32 kv heads (null: as many as
  // query heads), 4096 * 32 and 32768 positions.
  const kvAbsent = (mistral || qwen2) && field(file, j, 'num_key_value_heads') === undefined;
  const numKeyValueHeads = kvAbsent ? (mistral ? 8 : 32) : positiveInt(file, j, 'num_key_value_heads', numAttentionHeads);
  const vocabSize = positiveInt(file, j, 'vocab_size');
  const maxPositionEmbeddings = positiveInt(file, j, 'max_position_embeddings', mistral ? 4096 * 32 : qwen2 ? 32768 : 2048);
  const slidingWindow = mistral ? parseSlidingWindow(file, field(file, j, 'sliding_window')) : qwen2 ? qwen2SlidingWindow(file, j, numHiddenLayers) : null;
  const declaredHeadDim = field(file, j, 'head_dim');
  const hasHeadDim = declaredHeadDim !== undefined && declaredHeadDim !== null;
  if (!hasHeadDim && hiddenSize % numAttentionHeads !== 0) {
    throw new ModelConfigError(file, 'num_attention_heads', `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}; the head width must be a whole number (or give head_dim)`);
  }
  const headDim = hasHeadDim ? positiveInt(file, j, 'head_dim') : hiddenSize / numAttentionHeads;
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ModelConfigError(file, 'num_key_value_heads', `num_attention_heads ${numAttentionHeads} is not divisible by num_key_value_heads ${numKeyValueHeads}; each key/value head must serve a whole number of query heads`);
  }
  const rmsNormEps = positiveNumber(file, j, 'rms_norm_eps', 1e-6);
  const ropeTheta = positiveNumber(file, j, 'rope_theta', 10000);
  const initializerRange = positiveNumber(file, j, 'initializer_range', 0.02);

  const hiddenAct = field(file, j, 'hidden_act') ?? 'silu';
  if (hiddenAct !== 'silu') {
    throw new ModelConfigError(file, 'hidden_act', `expected "silu", got ${shown(hiddenAct)}; LLaMA's MLP is SwiGLU`);
  }
  const tie = field(file, j, 'tie_word_embeddings') ?? false;
  if (typeof tie !== 'boolean') throw new ModelConfigError(file, 'tie_word_embeddings', `expected true or false, got ${shown(tie)}`);
  const ropeScaling = parseRopeScaling(file, field(file, j, 'rope_scaling'));
  // Qwen2Config has no such fields (its q, k and v biases come with the architecture).
  for (const key of qwen2 ? [] : ['attention_bias', 'mlp_bias']) {
    const v = field(file, j, key);
    if (v !== undefined && v !== null && v !== false) {
      throw new ModelConfigError(file, key, `expected false, got ${shown(v)}; LLaMA's projections have no bias`);
    }
  }
  const torchDtype = field(file, j, 'torch_dtype') ?? 'float32';
  if (torchDtype !== 'float32' && torchDtype !== 'float16' && torchDtype !== 'bfloat16') {
    throw new ModelConfigError(file, 'torch_dtype', `expected "float32", "float16" or "bfloat16", got ${shown(torchDtype)}`);
  }

  const bosRaw = field(file, j, 'bos_token_id');
  const eosRaw = field(file, j, 'eos_token_id');
  // Qwen2Config gives no default token ids (LLaMA's 1 and 2 are other tokens in Qwen2's vocabulary).
  for (const [key, raw] of qwen2 ? ([['bos_token_id', bosRaw], ['eos_token_id', eosRaw]] as const) : []) {
    if (raw === undefined || raw === null) throw new ModelConfigError(file, key, 'is missing; Qwen2 configs have no default for it: add the id from the model\'s tokenizer_config.json (151643 is <|endoftext|>)');
  }
  const bosTokenId = bosRaw === undefined || bosRaw === null ? 1 : tokenId(file, 'bos_token_id', bosRaw, vocabSize);
  const eosTokenIds = eosRaw === undefined || eosRaw === null ? [2] : eosIds(file, eosRaw, vocabSize);
  const padRaw = field(file, j, 'pad_token_id');
  // LLaMA-1 conversions write pad_token_id -1 or 0; -1 means "none".
  const padTokenId = padRaw === undefined || padRaw === null || padRaw === -1 ? undefined : tokenId(file, 'pad_token_id', padRaw, vocabSize);

  return Object.freeze({
    modelType,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    vocabSize,
    maxPositionEmbeddings,
    slidingWindow,
    tieWordEmbeddings: tie,
    bosTokenId,
    eosTokenId: eosTokenIds[0]!,
    eosTokenIds: Object.freeze(eosTokenIds),
    padTokenId,
    hiddenAct: 'silu',
    initializerRange,
    torchDtype,
  });
}

/** A `sliding_window`: a positive whole number of keys, or null (absent: MistralConfig's and Qwen2Config's 4096). */
function parseSlidingWindow(file: string, v: unknown): number | null {
  if (v === undefined) return 4096;
  if (v === null) return null;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0 || v > 0xffffffff) {
    throw new ModelConfigError(file, 'sliding_window', `expected a positive integer or null (no window), got ${shown(v)}`);
  }
  return v;
}

/**
 * Qwen2's attention window from `use_sliding_window` (default false: no window), `sliding_window` (default 4096)
 * and which layers slide (`layer_types` where given, else layers from `max_window_layers`, default 28, on), as
 * Qwen2Config reads them: null where no layer slides, the window where every layer does. Refuses a window on some
 * layers only.
 */
function qwen2SlidingWindow(file: string, j: Json, numHiddenLayers: number): number | null {
  const use = field(file, j, 'use_sliding_window') ?? false;
  if (typeof use !== 'boolean') throw new ModelConfigError(file, 'use_sliding_window', `expected true or false, got ${shown(use)}`);
  // Read even when unused, so that a malformed value is reported.
  const window = parseSlidingWindow(file, field(file, j, 'sliding_window'));
  const layerTypes = field(file, j, 'layer_types');
  // The first sliding layer (-1: none) and whether every layer slides; counted, not listed per layer, since
  // num_hidden_layers is only checked against the weights later.
  let first: number;
  let all: boolean;
  if (layerTypes !== undefined && layerTypes !== null) {
    if (!Array.isArray(layerTypes) || layerTypes.length !== numHiddenLayers || layerTypes.some((t) => t !== 'full_attention' && t !== 'sliding_attention')) {
      throw new ModelConfigError(file, 'layer_types', `expected a list of ${numHiddenLayers} entries, each "full_attention" or "sliding_attention", got ${shown(layerTypes)}`);
    }
    first = layerTypes.indexOf('sliding_attention');
    all = layerTypes.every((t) => t === 'sliding_attention');
  } else {
    const raw = field(file, j, 'max_window_layers') ?? 28;
    if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 0) {
      throw new ModelConfigError(file, 'max_window_layers', `expected a whole number of layers, got ${shown(raw)}`);
    }
    // Layers from max_window_layers on slide.
    first = raw < numHiddenLayers ? raw : -1;
    all = raw === 0;
  }
  // Qwen2Config drops sliding_window unless use_sliding_window is true: then every layer attends to all keys.
  if (!use || window === null || first < 0) return null;
  if (all) return window;
  throw new ModelConfigError(
    file,
    'use_sliding_window',
    `is true and the window covers only some layers (layer ${first} of ${numHiddenLayers} on, from max_window_layers or layer_types); a window on some layers only is not supported: set use_sliding_window to false to attend to all keys, as the released Qwen2 models do`,
  );
}

/**
 * A complete Hugging Face `config.json` object for `config` (architectures `["LlamaForCausalLM"]` and
 * `model_type` "llama", `["MistralForCausalLM"]`, "mistral" and its `sliding_window`, or `["Qwen2ForCausalLM"]`,
 * "qwen2" and its window fields; every
 * hyperparameter) that `parseLlamaConfig` reads back to an equal config. Serialize with
 * `JSON.stringify(obj, null, 2)`.
 */
export function toHfConfigJson(config: LlamaConfig): Record<string, unknown> {
  const eos = config.eosTokenIds.length > 1 ? [...config.eosTokenIds] : config.eosTokenId;
  const mistral = config.modelType === 'mistral';
  const qwen2 = config.modelType === 'qwen2';
  const out: Record<string, unknown> = {
    architectures: [mistral ? 'MistralForCausalLM' : qwen2 ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    attention_bias: false,
    bos_token_id: config.bosTokenId,
    eos_token_id: eos,
    head_dim: config.headDim,
    hidden_act: config.hiddenAct,
    hidden_size: config.hiddenSize,
    initializer_range: config.initializerRange,
    intermediate_size: config.intermediateSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    mlp_bias: false,
    model_type: config.modelType,
    num_attention_heads: config.numAttentionHeads,
    num_hidden_layers: config.numHiddenLayers,
    num_key_value_heads: config.numKeyValueHeads,
    pad_token_id: config.padTokenId ?? null,
    pretraining_tp: 1,
    rms_norm_eps: config.rmsNormEps,
    rope_scaling: ropeScalingJson(config.ropeScaling),
    rope_theta: config.ropeTheta,
    tie_word_embeddings: config.tieWordEmbeddings,
    torch_dtype: config.torchDtype,
    use_cache: true,
    vocab_size: config.vocabSize,
  };
  if (mistral) {
    // MistralConfig has no bias or tensor-parallel fields.
    for (const key of ['attention_bias', 'mlp_bias', 'pretraining_tp']) delete out[key];
    out['sliding_window'] = config.slidingWindow;
  }
  if (qwen2) {
    // Qwen2Config has no bias or tensor-parallel fields; a window slides on every layer or none.
    for (const key of ['attention_bias', 'mlp_bias', 'pretraining_tp']) delete out[key];
    out['use_sliding_window'] = config.slidingWindow !== null;
    out['sliding_window'] = config.slidingWindow;
    out['max_window_layers'] = config.slidingWindow === null ? config.numHiddenLayers : 0;
  }
  return out;
}

/** Hyperparameter overrides in camelCase; `headDim` and `eosTokenIds` follow from the rest. */
export type LlamaConfigOverrides = Partial<Omit<LlamaConfig, 'headDim' | 'eosTokenIds' | 'hiddenAct'>>;

/**
 * A preset with some fields changed, validated like a parsed config.
 *
 * @example
 * const cfg = configFromPreset('tiny', { numHiddenLayers: 4 });
 */
export function configFromPreset(name: LlamaPresetName, overrides: LlamaConfigOverrides = {}): LlamaConfig {
  const preset = Object.prototype.hasOwnProperty.call(llamaPresets, name) ? llamaPresets[name] : undefined;
  if (preset === undefined) {
    throw new ModelConfigError(`preset "${String(name)}"`, undefined, `unknown preset; expected one of ${Object.keys(llamaPresets).join(', ')}`);
  }
  const merged: LlamaConfig = { ...preset, ...overrides, headDim: 0, hiddenAct: 'silu' } as LlamaConfig;
  const eosTokenIds = overrides.eosTokenId !== undefined ? [overrides.eosTokenId] : [...preset.eosTokenIds];
  const json = toHfConfigJson({ ...merged, headDim: merged.hiddenSize / merged.numAttentionHeads, eosTokenIds, eosTokenId: eosTokenIds[0]! });
  delete json['head_dim'];
  return parseLlamaConfig(json, `preset "${name}" with overrides ${JSON.stringify(overrides)}`);
}
