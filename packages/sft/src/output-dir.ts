// The output folder of a training run: what an earlier run left there (final adapter with its tokenizer where it brings
// its own vocabulary, trainer state, metrics, loss curve, checkpoints), the refusal to start a fresh run over it, and its removal on request.
import { ModelError, staleTokenizerFiles, tokenizerFileNames, type LlamaModel } from '@huatuo/llama';
import { ConfigError } from './errors.js';
import type { RunFiles } from './run-files.js';

const RUN_FILES = new Set(['adapter_config.json', 'adapter_model.safetensors', 'metrics.jsonl', 'loss.svg', 'trainer_state.json']);
/** Written beside the final adapter where it brings its own vocabulary; a run's only in a folder holding an adapter. */
const ADAPTER_TOKENIZER_FILES = new Set(tokenizerFileNames);
const CHECKPOINT_NAME = /^checkpoint-\d+(\.tmp|\.old)?$/;

/** The names in `dir` that a training run writes (final adapter and its tokenizer, metrics, loss curve, checkpoints), sorted. */
export async function earlierRun(files: Pick<RunFiles, 'list'>, dir: string): Promise<string[]> {
  const names = await files.list(dir);
  const withAdapter = names.includes('adapter_config.json');
  return names.filter((name) => RUN_FILES.has(name) || CHECKPOINT_NAME.test(name) || (withAdapter && ADAPTER_TOKENIZER_FILES.has(name))).sort();
}

/**
 * Whether `resume` continues the run in `dir`: 'latest', or a checkpoint directly inside `dir`. A
 * checkpoint of another folder starts a new run in `dir` from that checkpoint's state.
 */
export function resumesRunIn(files: Pick<RunFiles, 'isInside'>, dir: string, resume: string | null | undefined): boolean {
  return typeof resume === 'string' && (resume === 'latest' || files.isInside(resume, dir));
}

/**
 * Refuses to start a run in a folder that holds another run's files, unless `overwrite` (then
 * {@link clearRun} removes them before the first step). A run resumed from a checkpoint in that folder
 * continues its own files; one resumed from a checkpoint elsewhere would write over them, and is refused.
 * @throws ConfigError naming --output-dir, --resume and --overwrite-output-dir.
 */
export async function checkOutputDir(files: Pick<RunFiles, 'list'>, dir: string, options: { resume: boolean; overwrite: boolean }): Promise<void> {
  if (options.resume || options.overwrite) return;
  const found = await earlierRun(files, dir);
  if (found.length === 0) return;
  const shown = found.length > 4 ? `${found.slice(0, 4).join(', ')}, ...` : found.join(', ');
  throw new ConfigError(
    '--output-dir',
    `${dir} already holds a training run (${shown}). Continue it with --resume, replace it with --overwrite-output-dir, or choose another folder`,
  );
}

/** Removes an earlier run's files from `dir` (only those a run writes; anything else is kept). */
export async function clearRun(files: Pick<RunFiles, 'list' | 'remove' | 'join'>, dir: string): Promise<void> {
  for (const name of await earlierRun(files, dir)) await files.remove(files.join(dir, name));
}

/**
 * Refuses, before the first step, an output folder that the final adapter of `model` could not be saved into: one
 * holding tokenizer files but no adapter, where an adapter bringing its own vocabulary writes its tokenizer (see
 * staleTokenizerFiles); an adapter on the base's vocabulary passes.
 * @throws ConfigError naming --output-dir.
 */
export async function checkAdapterOutputDir(files: Pick<RunFiles, 'list' | 'readBytes' | 'join'>, dir: string, model: LlamaModel): Promise<void> {
  try {
    await staleTokenizerFiles(model, dir, await files.list(dir), (name) => files.readBytes(files.join(dir, name)));
  } catch (err) {
    if (err instanceof ModelError) throw new ConfigError('--output-dir', err.message);
    throw err;
  }
}
