// The flags of the commands that load a base model and a LoRA adapter (generate, merge, eval, serve):
// the same names, help and defaults in each, the checks of --quantize and --quantize-threads, the
// tokenizer's --trust-tokenizer-patterns (train's too), and the context flags (--max-model-len,
// --allow-long-max-model-len) of train, generate, eval and serve.
import type { Command } from 'commander';
import { ConfigError, resolveConfig, type TrainConfig } from '@huatuo/sft';
import { maxDefaultQuantizeThreads } from '@huatuo/tensor';

/** Help of --quantize where a base model is loaded. */
export const QUANTIZE_HELP = 'frozen base projections: none, int8 (per-row absmax) or nf4 (QLoRA 4-bit)';

/**
 * Adds --trust-tokenizer-patterns (as transformers' trust_remote_code) to a command that loads a model's or an
 * adapter's tokenizer.
 */
export function withTokenizerTrustFlag(cmd: Command): Command {
  return cmd.option(
    '--trust-tokenizer-patterns',
    "run the regular expressions of the model's (and adapter's) tokenizer.json as written, also those refused for want of a proof that they match in linear time, such as DeepSeek LLM's; " +
      'only for an original tokenizer from a source you trust: a text crafted against such a pattern can keep tokenizing for hours',
  );
}

/** The --trust-tokenizer-patterns flag as BaseModelOptions and loadAdapterWithTokenizer's options. */
export function tokenizerTrustFlag(opts: { trustTokenizerPatterns?: unknown }): { trustTokenizerPatterns: boolean } {
  return { trustTokenizerPatterns: opts.trustTokenizerPatterns === true };
}

/**
 * Adds --base, --adapter, --trust-tokenizer-patterns and --base-dtype to `cmd`: both folders required when `required`, else the
 * base defaults to the built-in demo model and the adapter is optional.
 */
export function withBaseFlags(cmd: Command, required = false): Command {
  const add = (flags: string, help: string) => (required ? cmd.requiredOption(flags, help) : cmd.option(flags, help));
  add('--base <folder>', `base model: a Hugging Face LLaMA folder${required ? '' : ' (default: the built-in tiny demo model)'}`);
  add('--adapter <dir>', 'PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors or adapter_model.bin)');
  withTokenizerTrustFlag(cmd);
  return cmd.option('--base-dtype <dtype>', 'dtype of the base weights: f32, f16 (half the memory) or auto (f16 where the adapter has shader-f16)', 'auto');
}

/** Help of --quantize-threads where a base model is loaded. */
export const QUANTIZE_THREADS_HELP =
  `threads quantizing the base's projections while it loads with --quantize, the same bytes for any count (1: the main thread; default: the cores less one, at most ${maxDefaultQuantizeThreads})`;

/** The checked value of a command's --quantize-threads flag: undefined when not given (the loader's default). */
export function quantizeThreadsFlag(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 1)) throw new ConfigError('--quantize-threads', `expected a whole number of at least 1 (1 quantizes on the main thread), got ${JSON.stringify(v)}`);
  return n;
}

/** The checked value of a command's --quantize flag. */
export function quantizeFlag(v: unknown): TrainConfig['quantize'] {
  return resolveConfig({ '--quantize': v ?? 'none' }).quantize;
}

/**
 * Adds --max-model-len and --allow-long-max-model-len (vLLM's --max-model-len and VLLM_ALLOW_LONG_MAX_MODEL_LEN)
 * to a command that loads a base model and checks lengths against its context.
 */
export function withContextFlags(cmd: Command): Command {
  return cmd
    .option('--max-model-len <n>', "longest prompt plus answer (or training example) the model is used for (default: config.json's max_position_embeddings, times rope_scaling's factor for linear, dynamic and yarn, as vLLM derives it)")
    .option('--allow-long-max-model-len', 'accept a --max-model-len above the length config.json allows, for positions the model was never trained for');
}

/** The checked values of --max-model-len and --allow-long-max-model-len, as BaseModelOptions. */
export function contextFlags(opts: { maxModelLen?: unknown; allowLongMaxModelLen?: unknown }): { maxModelLen?: number; allowLongMaxModelLen?: boolean } {
  const allowLongMaxModelLen = opts.allowLongMaxModelLen === true;
  if (opts.maxModelLen === undefined) {
    if (allowLongMaxModelLen) throw new ConfigError('--allow-long-max-model-len', 'allows a --max-model-len above config.json\'s length; give the length with --max-model-len <n>');
    return {};
  }
  const v = opts.maxModelLen;
  const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 1) || !Number.isSafeInteger(n)) throw new ConfigError('--max-model-len', `expected a whole number of tokens of at least 1, got ${JSON.stringify(v)}`);
  return { maxModelLen: n, allowLongMaxModelLen };
}
