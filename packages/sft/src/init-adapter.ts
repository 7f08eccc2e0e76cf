// A run that starts from an existing PEFT adapter (--init-adapter) trains that adapter's shape:
// its r, alpha, dropout and target modules become the recipe's, and flags that contradict them are refused.
import { adapterConfigName, parsePeftConfig } from '@huatuo/llama';
import type { TrainConfig } from './config.js';
import { ConfigError } from './errors.js';
import type { RunFiles } from './run-files.js';

type LoraKey = 'loraR' | 'loraAlpha' | 'loraDropout' | 'loraTargetModules';

const FIELDS: readonly { key: LoraKey; flag: string; peft: string }[] = [
  { key: 'loraR', flag: '--lora-r', peft: 'r' },
  { key: 'loraAlpha', flag: '--lora-alpha', peft: 'lora_alpha' },
  { key: 'loraDropout', flag: '--lora-dropout', peft: 'lora_dropout' },
  { key: 'loraTargetModules', flag: '--lora-target-modules', peft: 'target_modules' },
];

const same = (a: unknown, b: unknown) =>
  Array.isArray(a) && Array.isArray(b) ? [...a].sort().join(',') === [...b].sort().join(',') : a === b;

/**
 * The recipe for a run starting from the adapter in `dir`: the adapter's r, alpha, dropout and
 * target modules replace the config's. A key in `given` (set explicitly, e.g. by a flag) whose
 * value differs from the adapter's is refused rather than silently replaced.
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
    throw new ConfigError('--init-adapter', `${file} does not exist; pass a PEFT adapter folder (adapter_config.json, adapter_model.safetensors)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('--init-adapter', `${file} is not valid JSON (${(e as Error).message})`);
  }
  const lora = parsePeftConfig(json, file);
  const own: Record<LoraKey, unknown> = { loraR: lora.r, loraAlpha: lora.alpha, loraDropout: lora.dropout, loraTargetModules: [...lora.targetModules] };
  for (const f of FIELDS) {
    if (given.includes(f.key) && !same(config[f.key], own[f.key])) {
      const show = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));
      throw new ConfigError(
        f.flag,
        `${show(config[f.key])} contradicts the --init-adapter, whose ${f.peft} is ${show(own[f.key])} (${file}); drop ${f.flag} to train the adapter as it is, or start without --init-adapter`,
      );
    }
  }
  return { ...config, loraR: lora.r, loraAlpha: lora.alpha, loraDropout: lora.dropout, loraTargetModules: [...lora.targetModules] };
}
