// resolveConfig, which parses and checks a set of overrides (config keys or their command-line flags,
// CONFIG_OPTIONS in config-options.ts) into a TrainConfig.

import { checkConfig, DEFAULT_CONFIG, REDUCE_ON_PLATEAU_REFUSAL, type TrainConfig } from './config.js';
import { CONFIG_OPTIONS, type ConfigOption } from './config-options.js';
import { ConfigError } from './errors.js';

export { CONFIG_OPTIONS, type ConfigOption };

const OPTION_BY_KEY = new Map(CONFIG_OPTIONS.map((o) => [o.key as string, o]));
const OPTION_BY_FLAG = new Map(CONFIG_OPTIONS.map((o) => [o.flag, o]));

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function parseNumber(option: ConfigOption, value: unknown, integer: boolean): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new ConfigError(option.flag, `expected ${integer ? 'an integer' : 'a number'}, got ${describe(value)}`);
  }
  const range = (): string =>
    [option.min !== undefined ? `>= ${option.min}` : '', option.above !== undefined ? `> ${option.above}` : '', option.max !== undefined ? `<= ${option.max}` : '', option.below !== undefined ? `< ${option.below}` : '']
      .filter(Boolean)
      .join(' and ');
  if ((option.min !== undefined && n < option.min) || (option.above !== undefined && n <= option.above) || (option.max !== undefined && n > option.max) || (option.below !== undefined && n >= option.below)) {
    throw new ConfigError(option.flag, `expected a value ${range()}, got ${describe(value)}`);
  }
  return n;
}

/** Parses one override value (a CLI string, or an already typed value) for `option`. */
function parseValue(option: ConfigOption, value: unknown): unknown {
  switch (option.kind) {
    case 'int':
      return parseNumber(option, value, true);
    case 'number':
      return parseNumber(option, value, false);
    case 'int-or-auto':
      return value === 'auto' ? 'auto' : parseNumber(option, value, true);
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === 'yes') return true;
      if (value === 'false' || value === '0' || value === 'no') return false;
      throw new ConfigError(option.flag, `expected true or false, got ${describe(value)}`);
    case 'string':
    case 'nullable-string':
      if (value === null && option.kind === 'nullable-string') return null;
      if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(option.flag, `expected a non-empty string, got ${describe(value)}`);
      if (option.key === 'lrSchedulerType' && value === 'reduce_lr_on_plateau') throw new ConfigError(option.flag, REDUCE_ON_PLATEAU_REFUSAL);
      if (option.choices !== undefined && !option.choices.includes(value)) throw new ConfigError(option.flag, `expected one of ${option.choices.join(', ')}, got ${describe(value)}`);
      return value;
    case 'list': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : null;
      if (!items || items.some((s) => typeof s !== 'string')) throw new ConfigError(option.flag, `expected a comma-separated list, got ${describe(value)}`);
      const list = (items as string[]).map((s) => s.trim()).filter((s) => s !== '');
      if (list.length === 0) throw new ConfigError(option.flag, 'expected at least one entry');
      return list;
    }
    case 'json-numbers': {
      let parsed: unknown = value;
      if (typeof value === 'string') {
        try {
          parsed = JSON.parse(value);
        } catch {
          throw new ConfigError(option.flag, `expected a JSON object such as '{"num_cycles": 2}', got ${describe(value)}`);
        }
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string' && (typeof v !== 'number' || !Number.isFinite(v)))) {
        throw new ConfigError(option.flag, `expected a JSON object of numbers (or names) such as '{"num_cycles": 2}', got ${describe(typeof value === 'string' ? value : JSON.stringify(value))}`);
      }
      return Object.freeze({ ...(parsed as Record<string, number | string>) });
    }
  }
}

/**
 * The recipe with overrides applied and checked. Overrides are keyed by config key
 * (`cutoffLen`) or flag (`--cutoff-len`); values may be CLI strings or typed values;
 * undefined values are skipped. `--quantize int8|nf4` turns gradient checkpointing on unless
 * `--gradient-checkpointing` is given too.
 * @throws ConfigError naming the flag and its config key, the value got and the range expected.
 * @example resolveConfig({ '--micro-batch': '4' }).microBatchSize === 4
 */
export function resolveConfig(overrides: Readonly<Record<string, unknown>> = {}, base: Readonly<TrainConfig> = DEFAULT_CONFIG): TrainConfig {
  const config: TrainConfig = { ...base, loraTargetModules: [...base.loraTargetModules], loraModulesToSave: [...base.loraModulesToSave] };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const option = OPTION_BY_KEY.get(name) ?? OPTION_BY_FLAG.get(name);
    if (!option) {
      const asKey = name.startsWith('--') ? undefined : name;
      const flag = asKey === undefined ? name : `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new ConfigError(flag, `unknown option; the recipe's flags are ${CONFIG_OPTIONS.map((o) => o.flag).join(', ')} (or their TrainConfig keys: cutoffLen for --cutoff-len)`, asKey);
    }
    (config as unknown as Record<string, unknown>)[option.key] = parseValue(option, value);
  }
  // A quantized base trains with checkpointing unless told otherwise, as PEFT's
  // prepare_model_for_kbit_training(use_gradient_checkpointing=True) and QLoRA do: LLaMA-7B with
  // HuaTuo's recipe plans 7.20 GiB with an int8 base, 13.47 GiB without checkpointing.
  const given = (key: keyof TrainConfig) => Object.entries(overrides).some(([name, v]) => v !== undefined && (OPTION_BY_KEY.get(name) ?? OPTION_BY_FLAG.get(name))?.key === key);
  if (given('quantize') && config.quantize !== 'none' && !given('gradientCheckpointing')) config.gradientCheckpointing = true;
  checkConfig(config);
  return config;
}
