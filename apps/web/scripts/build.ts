// Builds the static web app into apps/web/dist: the page, its stylesheet, one esbuild bundle of
// the app with the packages' browser entries (WGSL included), the demo tokenizer and demo data.
// What the app imports only when needed (the Parquet reader) is split into chunks/, loaded on use.
// `npm run web:build` builds; importing it gives buildWeb() and needsBuild().
import { copyFile, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
export const webDir = join(here, '..');
export const repoDir = join(webDir, '..', '..');
export const distDir = join(webDir, 'dist');

/** A file of the built site and its size. */
export interface BuiltFile {
  path: string;
  bytes: number;
}

/** Files copied into dist as they are: [source, name in dist]. */
const copied: [string, string][] = [
  [join(webDir, 'static', 'index.html'), 'index.html'],
  [join(webDir, 'static', 'style.css'), 'style.css'],
  [join(webDir, 'static', 'icon.svg'), 'icon.svg'],
  [join(repoDir, 'packages', 'llama', 'assets', 'llama-tokenizer', 'tokenizer.model'), 'assets/tokenizer.model'],
  [join(repoDir, 'packages', 'sft', 'data', 'demo-qa.jsonl'), 'assets/demo-qa.jsonl'],
];

/** Folders whose files the bundle is made from. */
const sourceDirs = ['apps/web/src', 'apps/web/static', 'packages/tensor/src', 'packages/llama/src', 'packages/sft/src'].map((d) => join(repoDir, d));

async function newest(dir: string): Promise<number> {
  let t = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? await newest(p) : (await stat(p)).mtimeMs);
  }
  return t;
}

/** Whether dist is missing or older than any source file. */
export async function needsBuild(): Promise<boolean> {
  let built: number;
  try {
    built = (await stat(join(distDir, 'build.json'))).mtimeMs;
  } catch {
    return true;
  }
  for (const d of sourceDirs) if ((await newest(d)) > built) return true;
  return false;
}

/**
 * Bundles the app (minified unless `minify` is false) and copies the static files.
 * Returns every file written with its size in bytes.
 */
export async function buildWeb({ minify = true, outDir = distDir }: { minify?: boolean; outDir?: string } = {}): Promise<BuiltFile[]> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(join(outDir, 'assets'), { recursive: true });
  const result = await build({
    entryPoints: { app: join(webDir, 'src', 'main.ts') },
    outdir: outDir,
    chunkNames: 'chunks/[name]-[hash]',
    splitting: true,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source', 'browser'],
    minify,
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'silent',
  });
  for (const [from, to] of copied) await copyFile(from, join(outDir, to));
  const files: BuiltFile[] = [];
  async function walk(dir: string): Promise<void> {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else files.push({ path: relative(outDir, p), bytes: (await stat(p)).size });
    }
  }
  await walk(outDir);
  files.sort((a, b) => a.path.localeCompare(b.path));
  await writeFile(join(outDir, 'build.json'), `${JSON.stringify({ files, inputs: Object.keys(result.metafile.inputs).length }, null, 1)}\n`);
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = await buildWeb({ minify: !process.argv.includes('--no-minify') });
  for (const f of files) console.log(`${(f.bytes / 1024).toFixed(1).padStart(9)} KiB  ${f.path}`);
  console.log(`${(files.reduce((s, f) => s + f.bytes, 0) / 1024).toFixed(1).padStart(9)} KiB  total in ${relative(process.cwd(), distDir) || '.'}`);
}
