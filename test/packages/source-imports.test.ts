// Package seams: code outside packages/<p>/ reaches a package through its name ('@huatuo/p' or its
// '/internal' subpath), never through a path into packages/<p>/src, so what a package exports is all
// that other code can use.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { importSites } from './imports.js';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** This file, whose examples are the imports it looks for. */
const self = relative(root, fileURLToPath(import.meta.url)).split(sep).join('/');
const SKIPPED_DIRS = new Set(['node_modules', 'dist']);
const SOURCE_FILE = /\.(?:ts|tsx|mts|cts|js|mjs|cjs)$/;

/** A specifier that reaches into another package's sources, with the line it is on. */
interface PathImport {
  line: number;
  specifier: string;
  pkg: string;
}

/** The specifiers in `text` (of the file at repository path `file`) that enter packages/<p>/src from outside packages/<p>/. */
function sourcePathImports(file: string, text: string): PathImport[] {
  const own = /^packages\/([^/]+)\//.exec(file)?.[1];
  const found: PathImport[] = [];
  for (const { line, specifier } of importSites(text)) {
    let pkg: string | undefined;
    if (specifier.startsWith('.')) {
      const target = relative(root, resolve(root, dirname(file), specifier)).split(sep).join('/');
      pkg = /^packages\/([^/]+)\/src(?:\/|$)/.exec(target)?.[1];
    } else {
      pkg = /^@huatuo\/([^/]+)\/src(?:\/|$)/.exec(specifier)?.[1];
    }
    if (pkg !== undefined && pkg !== own) found.push({ line, specifier, pkg });
  }
  return found;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || SKIPPED_DIRS.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(path, out);
    else if (SOURCE_FILE.test(entry.name)) out.push(relative(root, path).split(sep).join('/'));
  }
  return out;
}

test('the check finds every form of import that enters a package source by path', () => {
  const text = [
    "import { getRuntime } from '../../packages/tensor/src/backend/context.js';",
    "import type { DeviceInfo } from '../../packages/tensor/src/backend/device.js';",
    'export {\n  x,\n} from "../../packages/llama/src/index.js";',
    "import '../../packages/sft/src/methods.js';",
    "const m = await import('../../packages/sus/src/cli.js');",
    "import { a } from '@huatuo/kg/src/graph.js';",
    "import { tensor } from '@huatuo/tensor';",
    "import { getRuntime as g } from '@huatuo/tensor/internal';",
    "import { b } from './helpers.js';",
    "import { c } from '../../packages/tensor/package.json';",
  ].join('\n');
  const found = sourcePathImports('test/tensor/example.test.ts', text);
  assert.deepEqual(found.map((f) => [f.line, f.pkg]), [[1, 'tensor'], [2, 'tensor'], [5, 'llama'], [6, 'sft'], [7, 'sus'], [8, 'kg']]);
  assert.deepEqual(sourcePathImports('packages/llama/src/model.ts', "import { x } from '../../tensor/src/tensor.js';"), [
    { line: 1, specifier: '../../tensor/src/tensor.js', pkg: 'tensor' },
  ]);
  assert.deepEqual(sourcePathImports('packages/llama/src/model.ts', "import { x } from './linear.js';"), []);
});

test('no file outside a package imports that package’s sources by path', () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(root)) {
    if (file === self) continue;
    for (const f of sourcePathImports(file, readFileSync(join(root, file), 'utf8'))) {
      offenders.push(`${file}:${f.line} imports '${f.specifier}'; import '@huatuo/${f.pkg}' (or '@huatuo/${f.pkg}/internal') instead`);
    }
  }
  assert.deepEqual(offenders, []);
});
