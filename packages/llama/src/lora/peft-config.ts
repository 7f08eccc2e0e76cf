// PEFT's adapter_config.json for a LoraConfig: read with every field that changes the computation either
// honoured or refused by name, and written back with the fields that differ from PEFT's defaults. Browser-safe.

import { AdapterError, shown } from '../errors.js';
import { peftFieldNames, resolveLoraConfig, type LoraConfig } from './lora-config.js';

/** PEFT's `adapter_config.json` object for `config`; fields at PEFT's defaults that older PEFT versions do not know are left out. */
export function toPeftConfigJson(config: LoraConfig, baseModel = ''): Record<string, unknown> {
  const json: Record<string, unknown> = {
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    modules_to_save: config.modulesToSave === null ? null : [...config.modulesToSave],
    peft_type: 'LORA',
    r: config.r,
    target_modules: typeof config.targetModules === 'string' ? config.targetModules : [...config.targetModules],
    task_type: 'CAUSAL_LM',
  };
  if (config.useRslora) json['use_rslora'] = true;
  if (config.useDora) json['use_dora'] = true;
  if (Object.keys(config.rankPattern).length > 0) json['rank_pattern'] = { ...config.rankPattern };
  if (Object.keys(config.alphaPattern).length > 0) json['alpha_pattern'] = { ...config.alphaPattern };
  if (config.layersToTransform !== null) json['layers_to_transform'] = [...config.layersToTransform];
  if (config.layersPattern !== null) json['layers_pattern'] = [...config.layersPattern];
  if (config.excludeModules !== null) json['exclude_modules'] = typeof config.excludeModules === 'string' ? config.excludeModules : [...config.excludeModules];
  return json;
}

/** Fields that change the computation in ways not implemented here: refused when set. */
const refused: readonly { key: string; isSet: (v: unknown) => boolean; why: string }[] = [
  { key: 'lora_bias', isSet: (v) => v === true, why: 'adapters with a bias on lora_B are not supported' },
  { key: 'fan_in_fan_out', isSet: (v) => v === true, why: 'it is for GPT-2 style Conv1D layers; LLaMA adapters have it false' },
  { key: 'megatron_config', isSet: (v) => v !== null && v !== undefined, why: 'Megatron-parallel LoRA layers are not supported' },
  { key: 'layer_replication', isSet: (v) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0), why: 'adapters over replicated layers (a deeper model than the base) are not supported' },
  { key: 'trainable_token_indices', isSet: (v) => v !== null && v !== undefined, why: 'adapters that also train embedding rows are not supported' },
  { key: 'target_parameters', isSet: (v) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0), why: 'LoRA on bare parameters is not supported' },
  { key: 'alora_invocation_tokens', isSet: (v) => v !== null && v !== undefined, why: 'activated LoRA (applied from invocation tokens on) is not supported' },
  { key: 'use_qalora', isSet: (v) => v === true, why: 'QA-LoRA (pooled adapter inputs) is not supported' },
  { key: 'arrow_config', isSet: (v) => v !== null && v !== undefined, why: 'Arrow routing between adapters is not supported' },
  {
    key: 'init_lora_weights',
    isSet: (v) => typeof v === 'string' && /^(pissa|corda|olora$|loftq$)/i.test(v),
    why:
      'that initialization changes the base weights (PEFT redoes it on load), so the adapter only works on the changed base; ' +
      "convert it to a plain LoRA with PEFT's save_pretrained(..., path_initial_model_for_weight_conversion=...), which writes init_lora_weights true",
  },
];

/**
 * Parses PEFT's `adapter_config.json` (already JSON-decoded); `file` names it in errors. Fields that only
 * matter at initialization or for bookkeeping (init_lora_weights that leave the base as it is, loftq_config, revision,
 * task_type...) are accepted.
 * @throws AdapterError naming the file and the field for a field whose computation is not implemented.
 */
export function parsePeftConfig(json: unknown, file: string): LoraConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AdapterError(file, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  if (j['peft_type'] !== undefined && j['peft_type'] !== 'LORA') {
    throw new AdapterError(file, `"peft_type" should be "LORA", got ${shown(j['peft_type'])}; only LoRA adapters are supported`);
  }
  for (const f of refused) if (f.isSet(j[f.key])) throw new AdapterError(file, `"${f.key}": ${shown(j[f.key])} is set, but ${f.why}`);
  if (j['bias'] !== undefined && j['bias'] !== 'none') throw new AdapterError(file, `"bias" should be "none", got ${shown(j['bias'])}; adapters with trained biases are not supported`);
  // PEFT treats an empty exclude_modules or layers_pattern as absent.
  const orNull = (v: unknown) => (v === undefined || v === '' ? null : v);
  const asList = (v: unknown) => (v === undefined || v === null || v === '' ? null : Array.isArray(v) ? v : [v]);
  return resolveLoraConfig(
    {
      r: (j['r'] ?? 8) as number,
      alpha: (j['lora_alpha'] ?? 8) as number,
      dropout: (j['lora_dropout'] ?? 0) as number,
      // PEFT's default targets for LLaMA when none are given.
      targetModules: (j['target_modules'] ?? ['q_proj', 'v_proj']) as LoraConfig['targetModules'],
      excludeModules: orNull(j['exclude_modules']) as LoraConfig['excludeModules'],
      layersToTransform: asList(j['layers_to_transform']) as LoraConfig['layersToTransform'],
      layersPattern: asList(j['layers_pattern']) as LoraConfig['layersPattern'],
      rankPattern: (j['rank_pattern'] ?? {}) as LoraConfig['rankPattern'],
      alphaPattern: (j['alpha_pattern'] ?? {}) as LoraConfig['alphaPattern'],
      useRslora: (j['use_rslora'] ?? false) as boolean,
      useDora: (j['use_dora'] ?? false) as boolean,
      modulesToSave: (j['modules_to_save'] ?? null) as LoraConfig['modulesToSave'],
    },
    file,
    peftFieldNames,
  );
}
