// LoRA hyperparameters as PEFT's `LoraConfig` holds them (targets, per-module rank and alpha, rsLoRA,
// layer subsets), their checks, and PEFT's on-disk names of the adapted modules and tensors. Browser-safe.

import { AdapterError, shown } from '../errors.js';
import { compilePythonRegex } from './python-regex.js';

/** Projections LoRA can adapt, by their Hugging Face module names. */
export type LoraTargetModule = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

/** Every adaptable projection, in a decoder layer's order. */
export const loraTargetModules: readonly LoraTargetModule[] = Object.freeze([
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
]);

/** LoRA hyperparameters (PEFT's `LoraConfig`); module names are full Hugging Face names such as `model.layers.0.self_attn.q_proj`. */
export interface LoraConfig {
  /** Rank r of the update B A (modules matched by `rankPattern` take theirs). */
  readonly r: number;
  /** The update is scaled by alpha / r, or alpha / sqrt(r) with `useRslora` (modules matched by `alphaPattern` take theirs). */
  readonly alpha: number;
  /** Dropout probability on the adapter's input (training only). */
  readonly dropout: number;
  /**
   * Which modules get an adapter (PEFT's `target_modules`): a list of names, where a module matches when its
   * full name equals an entry or ends with "." + the entry (`'q_proj'`, `'self_attn.q_proj'`); or a string,
   * a regular expression that must match a module's whole full name (`'.*\\.(q|v)_proj'`); or `'all-linear'`,
   * every projection of every layer. Only the seven projections can be adapted (not lm_head or the embeddings).
   */
  readonly targetModules: readonly string[] | string;
  /** Modules never adapted even when targeted (PEFT's `exclude_modules`), in the same forms as `targetModules`. Default null. */
  readonly excludeModules: readonly string[] | string | null;
  /**
   * Indices of the decoder layers to adapt (PEFT's `layers_to_transform`); null or empty: every layer.
   * Only with a list of `targetModules`, and not for entries equal to a module's full name.
   */
  readonly layersToTransform: readonly number[] | null;
  /** Names of the module list holding the layers, found in module names before the index (PEFT's `layers_pattern`, e.g. `['layers']`); null: any. */
  readonly layersPattern: readonly string[] | null;
  /** Rank per module (PEFT's `rank_pattern`): the first key, a regular expression, that matches the end of a module's full name after a "." (or all of it) sets its rank. */
  readonly rankPattern: Readonly<Record<string, number>>;
  /** Alpha per module (PEFT's `alpha_pattern`), keys matched as in `rankPattern`. */
  readonly alphaPattern: Readonly<Record<string, number>>;
  /** Rank-stabilized LoRA (PEFT's `use_rslora`): the update is scaled by alpha / sqrt(r) instead of alpha / r. Default false. */
  readonly useRslora: boolean;
  /**
   * Weight-decomposed LoRA (PEFT's `use_dora`): each adapted projection also learns a magnitude m [out], initialized to the
   * row norms of W, and computes (m / ||W + scaling B A||) (W + scaling B A) x, the norm per output row and held constant
   * for the gradient (DoRA paper, section 4.3). Default false.
   */
  readonly useDora: boolean;
  /**
   * Modules trained and saved whole beside the adapter (PEFT's `modules_to_save`): a module whose full name ends
   * with an entry (`'embed_tokens'`, `'lm_head'`) is replaced by a trainable f32 copy of itself while the adapter is
   * attached. Only LLaMA's `model.embed_tokens` and `lm_head` can be saved so. Default null.
   */
  readonly modulesToSave: readonly string[] | null;
}

/** PEFT's defaults for LLaMA: r 8, alpha 8, dropout 0, q_proj and v_proj, no patterns, alpha / r. */
export const defaultLoraConfig: LoraConfig = Object.freeze({
  r: 8,
  alpha: 8,
  dropout: 0,
  targetModules: Object.freeze(['q_proj', 'v_proj']),
  excludeModules: null,
  layersToTransform: null,
  layersPattern: null,
  rankPattern: Object.freeze({}),
  alphaPattern: Object.freeze({}),
  useRslora: false,
  useDora: false,
  modulesToSave: null,
});

/** `self_attn` or `mlp`: the submodule holding a projection. */
export function moduleGroup(target: LoraTargetModule): 'self_attn' | 'mlp' {
  return target === 'gate_proj' || target === 'up_proj' || target === 'down_proj' ? 'mlp' : 'self_attn';
}

/** The Hugging Face path of a projection, e.g. `model.layers.3.self_attn.q_proj`. */
export function modulePath(layer: number, target: LoraTargetModule): string {
  return `model.layers.${layer}.${moduleGroup(target)}.${target}`;
}

/** PEFT's key of an adapter matrix: `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`. */
export function peftKey(layer: number, target: LoraTargetModule, matrix: 'A' | 'B'): string {
  return `base_model.model.${modulePath(layer, target)}.lora_${matrix}.weight`;
}

/**
 * PEFT's key of a DoRA magnitude vector: `base_model.model.model.layers.N.self_attn.q_proj.lora_magnitude_vector`
 * (what get_peft_model_state_dict writes, without the `.weight` of the module's own state dict).
 */
export function peftMagnitudeKey(layer: number, target: LoraTargetModule): string {
  return `base_model.model.${modulePath(layer, target)}.lora_magnitude_vector`;
}

/** PEFT's key of the trained copy of embed_tokens that modules_to_save saves (the copy's own state-dict name, without `modules_to_save.default`). */
export const peftSavedEmbedKey = 'base_model.model.model.embed_tokens.weight';

/** PEFT's key of the trained copy of lm_head that modules_to_save saves. */
export const peftSavedLmHeadKey = 'base_model.model.lm_head.weight';

/** `targetModules` in words for messages: the list, `/regex/`, or all-linear. */
export function describeTargets(targets: LoraConfig['targetModules']): string {
  if (typeof targets !== 'string') return targets.join(', ');
  return isAllLinear(targets) ? 'all-linear' : `/${targets}/`;
}

/** Whether a string `target_modules` is PEFT's shorthand for every linear layer but the output layer. */
export function isAllLinear(targets: string): boolean {
  return targets.toLowerCase() === 'all-linear';
}

/** What each LoraConfig field is called in messages: its own name, or PEFT's adapter_config.json key. */
export type LoraFieldNames = Readonly<Record<keyof LoraConfig, string>>;

/** LoraConfig's field names, for messages about options given in code. */
export const apiFieldNames: LoraFieldNames = Object.freeze({
  r: 'r', alpha: 'alpha', dropout: 'dropout', targetModules: 'targetModules', excludeModules: 'excludeModules', layersToTransform: 'layersToTransform',
  layersPattern: 'layersPattern', rankPattern: 'rankPattern', alphaPattern: 'alphaPattern', useRslora: 'useRslora', useDora: 'useDora',
  modulesToSave: 'modulesToSave',
});

/** PEFT's adapter_config.json keys of the LoraConfig fields. */
export const peftFieldNames: LoraFieldNames = Object.freeze({
  r: 'r', alpha: 'lora_alpha', dropout: 'lora_dropout', targetModules: 'target_modules', excludeModules: 'exclude_modules', layersToTransform: 'layers_to_transform',
  layersPattern: 'layers_pattern', rankPattern: 'rank_pattern', alphaPattern: 'alpha_pattern', useRslora: 'use_rslora', useDora: 'use_dora',
  modulesToSave: 'modules_to_save',
});

const isNameList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0);

function checkModules(v: unknown, field: string, where: string): void {
  if (typeof v === 'string') {
    if (v.length === 0) throw new AdapterError(where, `${field} is an empty string; give a list of module names or a regular expression`);
    if (!isAllLinear(v)) compilePythonRegex(v, where, field);
    return;
  }
  if (!isNameList(v)) throw new AdapterError(where, `${field} should be a list of module names or a regular expression string, got ${shown(v)}`);
}

function checkPattern(pattern: unknown, field: string, where: string, isValue: (x: unknown) => boolean, what: string): void {
  if (pattern === null || typeof pattern !== 'object' || Array.isArray(pattern)) throw new AdapterError(where, `${field} should be an object of module patterns to values, got ${shown(pattern)}`);
  for (const [key, value] of Object.entries(pattern)) {
    compilePythonRegex(key, where, `${field} key`, (p) => `(.*\\.)?(${p})$`);
    if (!isValue(value)) throw new AdapterError(where, `${field} gives ${JSON.stringify(key)} the value ${shown(value)}; ${what}`);
  }
}

const isRank = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x > 0;
const isAlpha = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Checks and completes user LoRA options against PEFT's defaults; `where` names the source in errors. */
export function resolveLoraConfig(options: Partial<LoraConfig> = {}, where = 'LoraConfig', names: LoraFieldNames = apiFieldNames): LoraConfig {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<LoraConfig>;
  const cfg = { ...defaultLoraConfig, ...given };
  if (!isRank(cfg.r)) throw new AdapterError(where, `${names.r} should be a positive integer, got ${shown(cfg.r)}`);
  if (!isAlpha(cfg.alpha)) throw new AdapterError(where, `${names.alpha} should be a positive number, got ${shown(cfg.alpha)}`);
  if (typeof cfg.dropout !== 'number' || !(cfg.dropout >= 0 && cfg.dropout < 1)) {
    throw new AdapterError(where, `${names.dropout} should be in [0, 1), got ${shown(cfg.dropout)}`);
  }
  if (Array.isArray(cfg.targetModules) && cfg.targetModules.length === 0) {
    throw new AdapterError(where, `${names.targetModules} should name some of ${loraTargetModules.join(', ')}, got an empty list`);
  }
  checkModules(cfg.targetModules, names.targetModules, where);
  if (cfg.excludeModules !== null) checkModules(cfg.excludeModules, names.excludeModules, where);
  if (typeof cfg.useRslora !== 'boolean') throw new AdapterError(where, `${names.useRslora} should be true or false, got ${shown(cfg.useRslora)}`);
  if (typeof cfg.useDora !== 'boolean') throw new AdapterError(where, `${names.useDora} should be true or false, got ${shown(cfg.useDora)}`);
  if (cfg.modulesToSave !== null && !isNameList(cfg.modulesToSave)) {
    throw new AdapterError(where, `${names.modulesToSave} should be a list of module names such as ["embed_tokens", "lm_head"], or null, got ${shown(cfg.modulesToSave)}`);
  }
  checkPattern(cfg.rankPattern, names.rankPattern, where, isRank, 'ranks are positive integers');
  checkPattern(cfg.alphaPattern, names.alphaPattern, where, isAlpha, 'alphas are positive numbers');
  if (cfg.layersToTransform !== null) {
    if (!Array.isArray(cfg.layersToTransform) || !cfg.layersToTransform.every((i) => Number.isSafeInteger(i) && i >= 0)) {
      throw new AdapterError(where, `${names.layersToTransform} should be a list of layer indices (integers from 0), got ${shown(cfg.layersToTransform)}`);
    }
    if (typeof cfg.targetModules === 'string') {
      throw new AdapterError(where, `${names.layersToTransform} cannot be used when ${names.targetModules} is a string (${describeTargets(cfg.targetModules)}); PEFT refuses it too: put the layer indices in the regular expression`);
    }
  }
  if (cfg.layersPattern !== null) {
    if (!isNameList(cfg.layersPattern)) throw new AdapterError(where, `${names.layersPattern} should be a list of module names such as "layers", got ${shown(cfg.layersPattern)}`);
    for (const p of cfg.layersPattern) compilePythonRegex(p, where, names.layersPattern, (q) => `.*\\.${q}\\.(\\d+)\\.`);
    if (cfg.layersPattern.length > 0 && (cfg.layersToTransform === null || cfg.layersToTransform.length === 0)) {
      throw new AdapterError(where, `${names.layersPattern} is given without ${names.layersToTransform}; PEFT refuses it too: give the layer indices to adapt`);
    }
  }
  const list = <T>(v: readonly T[] | null) => (v === null ? null : Object.freeze([...v]));
  return Object.freeze({
    ...cfg,
    targetModules: typeof cfg.targetModules === 'string' ? cfg.targetModules : Object.freeze([...new Set(cfg.targetModules)]),
    excludeModules: typeof cfg.excludeModules === 'string' ? cfg.excludeModules : list(cfg.excludeModules),
    layersToTransform: list(cfg.layersToTransform),
    layersPattern: list(cfg.layersPattern),
    rankPattern: Object.freeze({ ...cfg.rankPattern }),
    alphaPattern: Object.freeze({ ...cfg.alphaPattern }),
    // PEFT treats an empty list as none.
    modulesToSave: cfg.modulesToSave === null || cfg.modulesToSave.length === 0 ? null : Object.freeze([...new Set(cfg.modulesToSave)]),
  });
}
