// LoRA hyperparameters and PEFT's on-disk names: `adapter_config.json` fields and the tensor
// keys of `adapter_model.safetensors`. Browser-safe.

import { AdapterError } from '../errors.js';

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

/** LoRA hyperparameters (PEFT's `LoraConfig`). */
export interface LoraConfig {
  /** Rank r of the update B A. */
  readonly r: number;
  /** The update is scaled by alpha / r. */
  readonly alpha: number;
  /** Dropout probability on the adapter's input (training only). */
  readonly dropout: number;
  /** Which projections get an adapter. */
  readonly targetModules: readonly LoraTargetModule[];
}

/** PEFT's defaults for LLaMA: r 8, alpha 8, dropout 0, q_proj and v_proj. */
export const defaultLoraConfig: LoraConfig = Object.freeze({ r: 8, alpha: 8, dropout: 0, targetModules: Object.freeze(['q_proj', 'v_proj'] as LoraTargetModule[]) });

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

/** Checks and completes user LoRA options against PEFT's defaults. */
export function resolveLoraConfig(options: Partial<LoraConfig> = {}, where = 'LoraConfig'): LoraConfig {
  const cfg = { ...defaultLoraConfig, ...options };
  if (!Number.isSafeInteger(cfg.r) || cfg.r <= 0) throw new AdapterError(where, `r should be a positive integer, got ${cfg.r}`);
  if (typeof cfg.alpha !== 'number' || !Number.isFinite(cfg.alpha) || cfg.alpha <= 0) {
    throw new AdapterError(where, `alpha should be a positive number, got ${cfg.alpha}`);
  }
  if (typeof cfg.dropout !== 'number' || !(cfg.dropout >= 0 && cfg.dropout < 1)) {
    throw new AdapterError(where, `dropout should be in [0, 1), got ${cfg.dropout}`);
  }
  if (!Array.isArray(cfg.targetModules) || cfg.targetModules.length === 0) {
    throw new AdapterError(where, `targetModules should be a non-empty list of ${loraTargetModules.join(', ')}`);
  }
  for (const t of cfg.targetModules) {
    if (!loraTargetModules.includes(t)) {
      throw new AdapterError(where, `target module ${JSON.stringify(t)} is not one of ${loraTargetModules.join(', ')}`);
    }
  }
  return Object.freeze({ ...cfg, targetModules: Object.freeze([...new Set(cfg.targetModules)]) });
}

/** PEFT's `adapter_config.json` object for `config`. */
export function toPeftConfigJson(config: LoraConfig, baseModel = ''): Record<string, unknown> {
  return {
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: config.r,
    target_modules: [...config.targetModules],
    task_type: 'CAUSAL_LM',
  };
}

/** Parses PEFT's `adapter_config.json` (already JSON-decoded); `file` names it in errors. */
export function parsePeftConfig(json: unknown, file: string): LoraConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AdapterError(file, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  if (j['peft_type'] !== undefined && j['peft_type'] !== 'LORA') {
    throw new AdapterError(file, `"peft_type" should be "LORA", got ${JSON.stringify(j['peft_type'])}; only LoRA adapters are supported`);
  }
  if (j['fan_in_fan_out'] === true) throw new AdapterError(file, '"fan_in_fan_out": true is for GPT-2 style Conv1D layers; LLaMA adapters have it false');
  if (j['bias'] !== undefined && j['bias'] !== 'none') throw new AdapterError(file, `"bias" should be "none", got ${JSON.stringify(j['bias'])}; adapters with trained biases are not supported`);
  const modules = j['modules_to_save'];
  if (modules !== undefined && modules !== null && !(Array.isArray(modules) && modules.length === 0)) {
    throw new AdapterError(file, `"modules_to_save" should be null, got ${JSON.stringify(modules)}; fully trained extra modules are not supported`);
  }
  let targets = j['target_modules'];
  if (typeof targets === 'string') targets = [targets];
  return resolveLoraConfig(
    {
      r: j['r'] as number,
      alpha: (j['lora_alpha'] ?? 8) as number,
      dropout: (j['lora_dropout'] ?? 0) as number,
      targetModules: targets as LoraTargetModule[],
    },
    file,
  );
}
