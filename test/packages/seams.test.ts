// Package seams: each package's package.json declares exactly the packages its sources import, its
// tsconfig references the same siblings (so an undeclared sibling import fails to compile), and only
// @huatuo/cli joins the libraries: @huatuo/sft, @huatuo/sus and @huatuo/kg need none of each other.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { importSites } from './imports.js';

const packagesDir = fileURLToPath(new URL('../../packages', import.meta.url));
/** Dependencies a package uses without importing them (ambient types named in its tsconfig). */
const UNIMPORTED: Readonly<Record<string, readonly string[]>> = { tensor: ['@webgpu/types'] };

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  bin?: Record<string, string>;
}

const dirs = readdirSync(packagesDir).filter((d) => existsSync(join(packagesDir, d, 'package.json'))).sort();
const manifest = (dir: string): Manifest => JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')) as Manifest;

/** The packages a source tree imports (workspace and npm, by package name; node: built-ins and its own name left out). */
function importedPackages(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (/\.tsx?$/.test(e.name)) {
        for (const { specifier } of importSites(readFileSync(path, 'utf8'))) {
          if (specifier.startsWith('.') || specifier.startsWith('#') || specifier.startsWith('node:')) continue;
          const name = /^(@[^/]+\/[^/]+|[^/]+)/.exec(specifier)![1]!;
          if (name !== manifest(dir).name) out.add(name);
        }
      }
    }
  };
  walk(join(packagesDir, dir, 'src'));
  return out;
}

test('each package declares exactly what its sources import, and references its declared siblings in tsconfig', () => {
  for (const dir of dirs) {
    const declared = Object.keys(manifest(dir).dependencies ?? {}).sort();
    const used = [...importedPackages(dir), ...(UNIMPORTED[dir] ?? [])].sort();
    assert.deepEqual(declared, used, `packages/${dir}/package.json dependencies against the packages its src imports`);
    const tsconfig = JSON.parse(readFileSync(join(packagesDir, dir, 'tsconfig.json'), 'utf8')) as { references?: { path: string }[] };
    const references = (tsconfig.references ?? []).map((r) => `@huatuo/${r.path.replace(/^\.\.\//, '')}`).sort();
    assert.deepEqual(references, declared.filter((d) => d.startsWith('@huatuo/')), `packages/${dir}/tsconfig.json references against its @huatuo dependencies`);
  }
});

test('only @huatuo/cli depends on the trainer, the SUS study and the data generator together, and only it has a bin', () => {
  const libraries = ['@huatuo/sft', '@huatuo/sus', '@huatuo/kg'];
  for (const dir of dirs) {
    const m = manifest(dir);
    const deps = Object.keys(m.dependencies ?? {});
    if (m.name === '@huatuo/cli') continue;
    assert.deepEqual(deps.filter((d) => d === '@huatuo/cli' || (libraries.includes(d) && libraries.includes(m.name))), [], `${m.name} depends on`);
    assert.equal(m.bin, undefined, `${m.name} declares a bin`);
  }
  const cli = manifest('cli');
  assert.deepEqual(Object.keys(cli.bin ?? {}), ['huatuo-train']);
  assert.ok(existsSync(join(packagesDir, 'cli', cli.bin!['huatuo-train']!)), 'the huatuo-train bin file is missing');
});
