// Guards on the folders commands write into: a training run's output folder holding an earlier
// run, and a merge's --out that would overwrite the base model or another model.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { ConfigError } from './errors.js';

const RUN_FILES = new Set(['adapter_config.json', 'adapter_model.safetensors', 'metrics.jsonl', 'loss.svg']);
const CHECKPOINT_NAME = /^checkpoint-\d+(\.tmp)?$/;

/** The files and folders of a training run in `dir` (final adapter, metrics, loss curve, checkpoints). */
export function runFiles(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir)
    .filter((name) => RUN_FILES.has(name) || CHECKPOINT_NAME.test(name))
    .sort();
}

/**
 * Refuses to start a fresh run in a folder that holds another run's files, unless `overwrite`
 * (then {@link clearRun} removes them before the first step). A resumed run continues its own files.
 * @throws ConfigError naming --output-dir, --resume and --overwrite-output-dir.
 */
export function checkOutputDir(dir: string, options: { resume: boolean; overwrite: boolean }): void {
  if (options.resume || options.overwrite) return;
  const found = runFiles(dir);
  if (found.length === 0) return;
  const shown = found.length > 4 ? `${found.slice(0, 4).join(', ')}, ...` : found.join(', ');
  throw new ConfigError(
    '--output-dir',
    `${dir} already holds a training run (${shown}). Continue it with --resume, replace it with --overwrite-output-dir, or choose another folder`,
  );
}

/** Removes an earlier run's files from `dir` (only those a run writes; anything else is kept). */
export async function clearRun(dir: string): Promise<void> {
  for (const name of runFiles(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

/** The real path of `path`, following links, for a path that may not exist yet (its nearest existing ancestor is resolved). */
function realPathOf(path: string): string {
  const abs = resolve(path);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : join(realPathOf(parent), basename(abs));
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

const MODEL_FILE = /^(config\.json|model\.safetensors|model\.safetensors\.index\.json|model-\d+-of-\d+\.safetensors|pytorch_model.*\.bin)$/;

/**
 * Refuses a merge --out that is the base folder or inside it, and one that already holds a
 * model unless `overwrite`.
 * @throws ConfigError naming --out.
 */
export function checkMergeOut(base: string, out: string, overwrite: boolean): void {
  if (existsSync(base) && isInside(realPathOf(out), realPathOf(base))) {
    throw new ConfigError('--out', `${out} is ${realPathOf(out) === realPathOf(base) ? 'the --base folder' : `inside the --base folder ${base}`}; merging there would overwrite the base model. Choose a folder outside it`);
  }
  if (overwrite || !existsSync(out) || !statSync(out).isDirectory()) return;
  const found = readdirSync(out).filter((f) => MODEL_FILE.test(f)).sort();
  if (found.length > 0) {
    throw new ConfigError('--out', `${out} already holds a model (${found.slice(0, 4).join(', ')}${found.length > 4 ? ', ...' : ''}); pass --overwrite to replace it, or choose another folder`);
  }
}
