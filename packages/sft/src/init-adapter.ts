// A run that starts from an existing PEFT adapter (--init-adapter) trains that adapter's shape:
// its r, alpha, dropout, target modules, rsLoRA, DoRA and modules_to_save become the recipe's, and flags that contradict them are refused.
import { adapterConfigName, loraTargetModules, parsePeftConfig, type LoraConfig } from '@huatuo/llama';
import type { TrainConfig } from './config.js';
import { ConfigError } from './errors.js';
import type { RunFiles } from './run-files.js';

type LoraKey = 'loraR' | 'loraAlpha' | 'loraDropout' | 'loraTargetModules' | 'loraUseRslora' | 'loraUseDora' | 'loraModulesToSave';

const FIELDS: readonly { key: LoraKey; flag: string; peft: string }[] = [
  { key: 'loraR', flag: '--lora-r', peft: 'r' },
  { key: 'loraAlpha', flag: '--lora-alpha', peft: 'lora_alpha' },
  { key: 'loraDropout', flag: '--lora-dropout', peft: 'lora_dropout' },
  { key: 'loraTargetModules', flag: '--lora-target-modules', peft: 'target_modules' },
  { key: 'loraUseRslora', flag: '--lora-use-rslora', peft: 'use_rslora' },
  { key: 'loraUseDora', flag: '--lora-use-dora', peft: 'use_dora' },
  { key: 'loraModulesToSave', flag: '--lora-modules-to-save', peft: 'modules_to_save' },
];

const same = (a: unknown, b: unknown) =>
  Array.isArray(a) && Array.isArray(b) ? [...a].sort().join(',') === [...b].sort().join(',') : a === b;

/** The adapter's targets as the trainer's list of projection names, or the adapter_config.json field the flags cannot express. */
function recipeTargets(lora: LoraConfig): string[] | string {
  if (Object.keys(lora.rankPattern).length > 0) return 'rank_pattern';
  if (Object.keys(lora.alphaPattern).length > 0) return 'alpha_pattern';
  if (lora.layersToTransform !== null && lora.layersToTransform.length > 0) return 'layers_to_transform';
  if (lora.excludeModules !== null) return 'exclude_modules';
  if (typeof lora.targetModules === 'string') return lora.targetModules.toLowerCase() === 'all-linear' ? [...loraTargetModules] : 'target_modules (a regular expression)';
  if (!lora.targetModules.every((t) => (loraTargetModules as readonly string[]).includes(t))) return 'target_modules (module paths)';
  return [...lora.targetModules];
}

/**
 * The recipe for a run starting from the adapter in `dir`: the adapter's r, alpha, dropout, target
 * modules, use_rslora and use_dora replace the config's. A key in `given` (set explicitly, e.g. by a flag) whose
 * value differs from the adapter's is refused rather than silently replaced, and so is an adapter whose
 * shape the flags cannot express (per-module ranks, a layer subset, regular-expression targets).
 * @throws ConfigError naming the flag, both values and the adapter's config file.
 * @example const config = await withInitAdapter(runFiles, resolveConfig({}), 'lora-llama-med', []);
 */
export async function withInitAdapter(files: Pick<RunFiles, 'readText' | 'join'>, config: TrainConfig, dir: string, given: readonly (keyof TrainConfig)[]): Promise<TrainConfig> {
  const file = files.join(dir, adapterConfigName);
  let text: string;
  try {
    text = await files.readText(file);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
    throw new ConfigError('--init-adapter', `${file} does not exist; pass a PEFT adapter folder (adapter_config.json, adapter_model.safetensors or adapter_model.bin)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('--init-adapter', `${file} is not valid JSON (${(e as Error).message})`);
  }
  const lora = parsePeftConfig(json, file);
  const targets = recipeTargets(lora);
  if (typeof targets === 'string') {
    throw new ConfigError('--init-adapter', `${file} sets ${targets}, which the trainer's --lora-* flags cannot express; train it with applyLora and loadAdapter in code, or start without --init-adapter`);
  }
  const modulesToSave = [...(lora.modulesToSave ?? [])];
  const own: Record<LoraKey, unknown> = {
    loraR: lora.r, loraAlpha: lora.alpha, loraDropout: lora.dropout, loraTargetModules: targets, loraUseRslora: lora.useRslora, loraUseDora: lora.useDora, loraModulesToSave: modulesToSave,
  };
  for (const f of FIELDS) {
    if (given.includes(f.key) && !same(config[f.key], own[f.key])) {
      const show = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));
      throw new ConfigError(
        f.flag,
        `${show(config[f.key])} contradicts the --init-adapter, whose ${f.peft} is ${show(own[f.key])} (${file}); drop ${f.flag} to train the adapter as it is, or start without --init-adapter`,
      );
    }
  }
  return { ...config, loraR: lora.r, loraAlpha: lora.alpha, loraDropout: lora.dropout, loraTargetModules: targets, loraUseRslora: lora.useRslora, loraUseDora: lora.useDora, loraModulesToSave: modulesToSave };
}
