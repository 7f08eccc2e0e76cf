// Which projections of a LLaMA get a LoRA adapter, with which rank, alpha and scaling, decided as PEFT
// decides it over the model's module names: target_modules (names, a regular expression, all-linear),
// exclude_modules, layers_to_transform with layers_pattern, rank_pattern, alpha_pattern, use_rslora. Browser-safe.

import { AdapterError } from '../errors.js';
import { compilePythonRegex, type PythonRegex } from './python-regex.js';
import { apiFieldNames, describeTargets, isAllLinear, loraTargetModules, modulePath, type LoraConfig, type LoraFieldNames, type LoraTargetModule } from './lora-config.js';

/** One adapted projection: where it is and its adapter's shape and scaling. */
export interface LoraModule {
  readonly layer: number;
  readonly target: LoraTargetModule;
  /** Full Hugging Face name, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly name: string;
  readonly r: number;
  readonly alpha: number;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  readonly scaling: number;
}

type ModuleKind = 'projection' | 'embedding' | 'other';

/** LlamaForCausalLM's modules as PyTorch's named_modules lists them (the unnamed root aside). */
function llamaModules(numLayers: number): { name: string; kind: ModuleKind; layer?: number; target?: LoraTargetModule }[] {
  const out: { name: string; kind: ModuleKind; layer?: number; target?: LoraTargetModule }[] = [
    { name: 'model', kind: 'other' },
    { name: 'model.embed_tokens', kind: 'embedding' },
    { name: 'model.layers', kind: 'other' },
  ];
  for (let layer = 0; layer < numLayers; layer++) {
    const l = `model.layers.${layer}`;
    out.push({ name: l, kind: 'other' }, { name: `${l}.self_attn`, kind: 'other' });
    for (const target of loraTargetModules.slice(0, 4)) out.push({ name: modulePath(layer, target), kind: 'projection', layer, target });
    out.push({ name: `${l}.mlp`, kind: 'other' });
    for (const target of loraTargetModules.slice(4)) out.push({ name: modulePath(layer, target), kind: 'projection', layer, target });
    out.push({ name: `${l}.mlp.act_fn`, kind: 'other' }, { name: `${l}.input_layernorm`, kind: 'other' }, { name: `${l}.post_attention_layernorm`, kind: 'other' });
  }
  out.push({ name: 'model.norm', kind: 'other' }, { name: 'model.rotary_emb', kind: 'other' }, { name: 'lm_head', kind: 'embedding' });
  return out;
}

/** A module matcher in PEFT's list form (equal, or ending with "." + an entry) or string form (regex full match). */
function matcher(spec: readonly string[] | string, where: string, field: string): (name: string) => boolean {
  if (typeof spec !== 'string') return (name) => spec.includes(name) || spec.some((e) => name.endsWith(`.${e}`));
  const re = compilePythonRegex(spec, where, field);
  return (name) => re.fullMatch(name);
}

/** The layer index in a module name, found as PEFT finds it (after a `layers_pattern` name, or any name), or null. */
function layerIndexOf(name: string, patterns: readonly PythonRegex[]): number | null {
  for (const re of patterns) {
    const index = re.matchStart(name)?.[1];
    if (index !== undefined && index !== null) return Number(index);
  }
  return null;
}

/** The value of the first pattern key (in order) matching the end of `name` after a "." or all of it, else `fallback`. */
function patternValue(pattern: Readonly<Record<string, number>>, keys: readonly PythonRegex[], name: string, fallback: number): number {
  const values = Object.values(pattern);
  const i = keys.findIndex((re) => re.matchStart(name) !== null);
  return i < 0 ? fallback : values[i]!;
}

/**
 * The projections `config` adapts on a LLaMA of `numLayers` layers, in layer order, each with its rank,
 * alpha and scaling, as PEFT's LoraModel would inject them. `where` names the config's source in errors,
 * `names` its fields.
 * @throws AdapterError when a target selects lm_head, the embeddings or a module that is not a linear layer,
 * when a list entry names no projection, or when nothing is selected.
 * @example
 * loraModules(resolveLoraConfig({ targetModules: '.*\\.0\\.self_attn\\.(q|v)_proj' }), 2).map((m) => m.name);
 * // ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj']
 */
export function loraModules(config: LoraConfig, numLayers: number, where = 'LoraConfig', names: LoraFieldNames = apiFieldNames): LoraModule[] {
  const targets = typeof config.targetModules === 'string' && isAllLinear(config.targetModules) ? loraTargetModules : config.targetModules;
  const targeted = matcher(targets, where, names.targetModules);
  const excluded = config.excludeModules === null ? () => false : matcher(config.excludeModules, where, names.excludeModules);
  const layers = config.layersToTransform !== null && config.layersToTransform.length > 0 ? config.layersToTransform : null;
  const layerRes = (config.layersPattern ?? []).length === 0
    ? [compilePythonRegex('.*\\.[^.]*\\.(\\d+)\\.', where, names.layersPattern)]
    : config.layersPattern!.map((p) => compilePythonRegex(p, where, names.layersPattern, (q) => `.*\\.${q}\\.(\\d+)\\.`));
  const keysOf = (pattern: Readonly<Record<string, number>>, field: string) => Object.keys(pattern).map((k) => compilePythonRegex(k, where, `${field} key`, (p) => `(.*\\.)?(${p})$`));
  const rankKeys = keysOf(config.rankPattern, names.rankPattern);
  const alphaKeys = keysOf(config.alphaPattern, names.alphaPattern);
  const selects = (name: string): boolean => {
    if (excluded(name) || !targeted(name)) return false;
    // PEFT applies layers_to_transform to list entries matched as a suffix, not to exact full names or a regex.
    if (layers === null || typeof targets === 'string' || targets.includes(name)) return true;
    const index = layerIndexOf(name, layerRes);
    return index !== null && layers.includes(index);
  };
  const all = llamaModules(numLayers);
  const out: LoraModule[] = [];
  for (const m of all) {
    if (!selects(m.name)) continue;
    if (m.kind !== 'projection') {
      const why = m.kind === 'embedding' ? 'LoRA on lm_head and the embeddings is not supported here' : 'it is not a linear layer (PEFT refuses it too)';
      throw new AdapterError(where, `${names.targetModules} ${describeTargets(config.targetModules)} selects ${m.name}: ${why}; target only ${loraTargetModules.join(', ')}, or exclude ${m.name} with ${names.excludeModules}`);
    }
    const r = patternValue(config.rankPattern, rankKeys, m.name, config.r);
    const alpha = patternValue(config.alphaPattern, alphaKeys, m.name, config.alpha);
    out.push({ layer: m.layer!, target: m.target!, name: m.name, r, alpha, scaling: alpha / (config.useRslora ? Math.sqrt(r) : r) });
  }
  if (typeof targets !== 'string') {
    for (const e of targets) {
      if (!all.some((m) => m.kind === 'projection' && (m.name === e || m.name.endsWith(`.${e}`)))) {
        throw new AdapterError(where, `${names.targetModules} entry ${JSON.stringify(e)} names no projection of this ${numLayers}-layer LLaMA; its projections are ${loraTargetModules.join(', ')} (a module matches an entry equal to its full name, e.g. ${modulePath(0, 'q_proj')}, or ending it after a ".")`);
      }
    }
  }
  if (out.length === 0) {
    const hint = typeof targets === 'string' ? `; a string is a regular expression that must match a whole name such as ${modulePath(0, 'q_proj')}: name modules in a list, e.g. ["q_proj"]` : '';
    throw new AdapterError(where, `${names.targetModules} ${describeTargets(config.targetModules)} selects no projection of this ${numLayers}-layer LLaMA (after ${names.excludeModules} and ${names.layersToTransform}); target some of ${loraTargetModules.join(', ')}${hint}`);
  }
  return out;
}

/** Which of LLaMA's modules `modules_to_save` replaces with trained copies. */
export interface SavedModules {
  readonly embedTokens: boolean;
  readonly lmHead: boolean;
}

/**
 * The modules `config.modulesToSave` selects on a LLaMA of `numLayers` layers, as PEFT's _set_trainable selects them:
 * every module of the PEFT model (`base_model.model.model.embed_tokens`, ...) whose name ends with an entry, compared
 * as plain strings (so `tokens` selects embed_tokens too). `where` names the config's source in errors.
 * @throws AdapterError when an entry selects another module than embed_tokens and lm_head, or no module at all.
 * @example
 * savedModules(resolveLoraConfig({ modulesToSave: ['embed_tokens', 'lm_head'] }), 2); // { embedTokens: true, lmHead: true }
 */
export function savedModules(config: LoraConfig, numLayers: number, where = 'LoraConfig', names: LoraFieldNames = apiFieldNames): SavedModules {
  let embedTokens = false;
  let lmHead = false;
  const prefixed = [{ name: 'base_model', kind: 'other' }, { name: 'base_model.model', kind: 'other' }, ...llamaModules(numLayers)].map((m) => ({
    ...m,
    full: m.name.startsWith('base_model') ? m.name : `base_model.model.${m.name}`,
  }));
  for (const entry of config.modulesToSave ?? []) {
    const selected = prefixed.filter((m) => m.full.endsWith(entry));
    if (selected.length === 0) {
      throw new AdapterError(where, `${names.modulesToSave} entry ${JSON.stringify(entry)} names no module of this ${numLayers}-layer LLaMA; the modules that can be saved whole are embed_tokens and lm_head`);
    }
    for (const m of selected) {
      if (m.name === 'model.embed_tokens') embedTokens = true;
      else if (m.name === 'lm_head') lmHead = true;
      else throw new AdapterError(where, `${names.modulesToSave} entry ${JSON.stringify(entry)} selects ${m.full}, which is not supported: only embed_tokens and lm_head can be trained and saved whole`);
    }
  }
  return { embedTokens, lmHead };
}
