// Package entry points: an installed package gives TypeScript the declarations tsc --build emits
// beside each compiled file (dist/*.d.ts), not its sources, and this repository (the `source`
// condition of its tsconfig, tests and web build) the sources.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const packagesDir = fileURLToPath(new URL('../../packages', import.meta.url));
const dirs = readdirSync(packagesDir).filter((d) => existsSync(join(packagesDir, d, 'package.json'))).sort();

type Conditions = { [condition: string]: string | Conditions };

/** Every condition object holding a `default` target, with where it sits (`exports["."].browser`). */
function targets(map: Conditions, where: string): { where: string; conditions: Conditions }[] {
  const found = typeof map['default'] === 'string' ? [{ where, conditions: map }] : [];
  for (const [key, value] of Object.entries(map)) if (typeof value === 'object') found.push(...targets(value, `${where}[${JSON.stringify(key)}]`));
  return found;
}

test('every entry point resolves source to src/*.ts, then types to the dist/*.d.ts beside its dist/*.js', () => {
  const base = JSON.parse(readFileSync(fileURLToPath(new URL('../../tsconfig.base.json', import.meta.url)), 'utf8')) as { compilerOptions: Record<string, unknown> };
  assert.equal(base.compilerOptions['declaration'], true, 'tsc --build emits the declarations types points at');
  for (const dir of dirs) {
    const manifest = JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')) as { exports: Conditions; imports?: Conditions; files: string[] };
    const tsconfig = JSON.parse(readFileSync(join(packagesDir, dir, 'tsconfig.json'), 'utf8')) as { compilerOptions: { rootDir: string; outDir: string } };
    assert.deepEqual([tsconfig.compilerOptions.rootDir, tsconfig.compilerOptions.outDir], ['src', 'dist'], dir);
    assert.ok(manifest.files.includes('dist'), `${dir}: files includes dist`);
    const all = [...targets(manifest.exports, 'exports'), ...targets(manifest.imports ?? {}, 'imports')];
    assert.ok(all.length > 0, dir);
    for (const { where, conditions } of all) {
      const stem = /^\.\/dist\/(.+)\.js$/.exec(conditions['default'] as string)?.[1];
      assert.ok(stem, `${dir} ${where}: default is a dist/*.js file`);
      assert.deepEqual(
        Object.entries(conditions).filter(([, v]) => typeof v === 'string'),
        [['source', `./src/${stem}.ts`], ['types', `./dist/${stem}.d.ts`], ['default', `./dist/${stem}.js`]],
        `packages/${dir}/package.json ${where}: source first (this repository), then types and default (consumers)`,
      );
      assert.ok(existsSync(join(packagesDir, dir, 'src', `${stem}.ts`)), `${dir} ${where}: src/${stem}.ts exists`);
    }
  }
});

/** The declarations tsc emits for one source file. */
function declarations(file: string): string {
  const options = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022 };
  return ts.transpileDeclaration(readFileSync(file, 'utf8'), { fileName: file, compilerOptions: options }).outputText;
}

test("@huatuo/tensor's declarations bring in @webgpu/types for the GPU types they name, so a consumer need not list it", () => {
  for (const entry of ['index', 'internal']) {
    assert.match(declarations(join(packagesDir, 'tensor/src', `${entry}.ts`)), /^\/\/\/ <reference types="@webgpu\/types" preserve="true" \/>$/m, `tensor/src/${entry}.ts`);
  }
});

test("@huatuo/sft's declarations do not import @huggingface/jinja's, which do not type-check under moduleResolution node16", () => {
  const srcDir = join(packagesDir, 'sft/src');
  const importers = readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).filter((n) => n.endsWith('.ts') && readFileSync(join(srcDir, n), 'utf8').includes("from '@huggingface/jinja'"));
  assert.ok(importers.length > 0, 'sft renders chat templates with @huggingface/jinja');
  for (const name of importers) assert.doesNotMatch(declarations(join(srcDir, name)), /@huggingface\/jinja'/, `sft/src/${name}`);
});

test('every package ships the license text its package.json names (npm packs LICENSE whatever `files` says)', () => {
  const root = readFileSync(fileURLToPath(new URL('../../LICENSE', import.meta.url)), 'utf8');
  assert.match(root, /^\s*Apache License\s+Version 2\.0, January 2004/);
  for (const dir of dirs) {
    const manifest = JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')) as { license?: string };
    assert.equal(manifest.license, 'Apache-2.0', dir);
    assert.equal(readFileSync(join(packagesDir, dir, 'LICENSE'), 'utf8'), root, `${dir}/LICENSE is the root LICENSE`);
  }
});
