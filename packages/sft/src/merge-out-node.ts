// The guard on `huatuo-train merge --out`: never the base model's folder or a folder inside it,
// and never over another model unless asked.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ConfigError } from './errors.js';

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
    const where = realPathOf(out) === realPathOf(base) ? 'the --base folder' : `inside the --base folder ${base}`;
    throw new ConfigError('--out', `${out} is ${where}; merging there would overwrite the base model. Choose a folder outside it`);
  }
  if (overwrite || !existsSync(out) || !statSync(out).isDirectory()) return;
  const found = readdirSync(out).filter((f) => MODEL_FILE.test(f)).sort();
  if (found.length > 0) {
    throw new ConfigError('--out', `${out} already holds a model (${found.slice(0, 4).join(', ')}${found.length > 4 ? ', ...' : ''}); pass --overwrite to replace it, or choose another folder`);
  }
}
