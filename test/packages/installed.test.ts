// The packages as a user installs them: the tarballs scripts/pack.mjs writes, unpacked into a fresh
// project's node_modules/@huatuo outside this repository, each with only its declared third-party
// dependencies (linked from this repository's node_modules, so nothing is downloaded). Plain Node
// imports every entry point and computes on WebGPU, huatuo-train runs from node_modules/.bin, and
// TypeScript checks a consumer against the shipped declarations.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const consumerDir = fileURLToPath(new URL('./consumer/', import.meta.url));

type Conditions = { [condition: string]: string | Conditions };
interface Manifest {
  name: string;
  version: string;
  exports: Conditions;
  imports?: Conditions;
  bin?: Record<string, string>;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
}

/** Every [condition path, target] of an exports or imports map, e.g. ['exports["."].browser.types', './dist/browser.d.ts']. */
function targets(map: Conditions, where: string): [string, string][] {
  return Object.entries(map).flatMap(([key, value]) => (typeof value === 'string' ? [[`${where}.${key}`, value] as [string, string]] : targets(value, `${where}[${JSON.stringify(key)}]`)));
}

/** Runs `command` in `cwd` with this process's environment less anything that would make Node load TypeScript. */
function runIn(cwd: string, command: string, args: readonly string[]): SpawnSyncReturns<string> {
  const { NODE_OPTIONS: _options, ...env } = process.env;
  return spawnSync(command, args, { cwd, env: { ...env, XDG_RUNTIME_DIR: env['XDG_RUNTIME_DIR'] ?? '/tmp' }, encoding: 'utf8', timeout: 120_000 });
}

/** The folder of `dep` as the workspace package `name` resolves it: its own node_modules, else the repository's. */
function workspaceDependency(name: string, dep: string): string {
  const candidates = [join(repoRoot, 'packages', name.slice('@huatuo/'.length), 'node_modules', dep), join(repoRoot, 'node_modules', dep)];
  const found = candidates.find((c) => existsSync(join(c, 'package.json')));
  assert.ok(found, `${name} depends on ${dep}, which is not installed here: run npm install`);
  return found;
}

function assertRan(result: SpawnSyncReturns<string>, what: string): string {
  assert.equal(result.error, undefined, `${what}: ${result.error?.message}`);
  assert.equal(result.status, 0, `${what} exited with ${result.status}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result.stdout;
}

test('npm pack and npm publish of a workspace package are refused, naming scripts/pack.mjs, which writes the tarballs to publish', () => {
  const dirs = readdirSync(join(repoRoot, 'packages')).filter((d) => existsSync(join(repoRoot, 'packages', d, 'package.json'))).sort();
  for (const dir of dirs) {
    const manifest = JSON.parse(readFileSync(join(repoRoot, 'packages', dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    assert.equal(manifest.scripts?.['prepack'], 'node ../../scripts/refuse-workspace-pack.mjs', `packages/${dir}/package.json prepack`);
  }
  const refused = runIn(repoRoot, 'npm', ['pack', '--workspace', `packages/${dirs[0]}`, '--dry-run', '--offline']);
  assert.notEqual(refused.status, 0, 'npm pack of a workspace package');
  assert.match(refused.stderr, /run `node scripts\/pack\.mjs <folder>` at the repository root/);
});

describe('the packed packages installed in a fresh project', () => {
  let work = '';
  let project = '';
  const installed = new Map<string, Manifest>();

  before(() => {
    for (const dir of readdirSync(join(repoRoot, 'packages'))) {
      if (!existsSync(join(repoRoot, 'packages', dir, 'package.json'))) continue;
      assert.ok(existsSync(join(repoRoot, 'packages', dir, 'dist/index.js')), `packages/${dir}/dist is missing: run \`npx tsc --build\` (or npm run build) first`);
    }
    work = mkdtempSync(join(tmpdir(), 'huatuo-installed-'));
    project = join(work, 'project');
    const packed = assertRan(runIn(repoRoot, process.execPath, ['scripts/pack.mjs', join(work, 'tarballs'), '--skip-build']), 'scripts/pack.mjs');
    mkdirSync(join(project, 'node_modules/.bin'), { recursive: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    for (const line of packed.trim().split('\n')) {
      const [name, tarball] = line.split('\t') as [string, string];
      const folder = join(project, 'node_modules', name);
      mkdirSync(folder, { recursive: true });
      assertRan(runIn(work, 'tar', ['-xzf', tarball, '-C', folder, '--strip-components=1']), `unpacking ${tarball}`);
      const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as Manifest;
      installed.set(name, manifest);
      for (const dep of Object.keys(manifest.dependencies ?? {}).filter((d) => !d.startsWith('@huatuo/'))) {
        const link = join(folder, 'node_modules', dep);
        mkdirSync(dirname(link), { recursive: true });
        symlinkSync(workspaceDependency(name, dep), link);
      }
      // npm links each bin into node_modules/.bin and makes its file executable.
      for (const [command, file] of Object.entries(manifest.bin ?? {})) {
        chmodSync(join(folder, file), 0o755);
        symlinkSync(relative(join(project, 'node_modules/.bin'), join(folder, file)), join(project, 'node_modules/.bin', command));
      }
    }
    // The consumer's own development dependency, as in any Node project written in TypeScript.
    mkdirSync(join(project, 'node_modules/@types'), { recursive: true });
    symlinkSync(join(repoRoot, 'node_modules/@types/node'), join(project, 'node_modules/@types/node'));
    for (const file of readdirSync(consumerDir)) copyFileSync(join(consumerDir, file), join(project, file));
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds every package, each file its exports and imports name, and no condition leading to TypeScript sources', () => {
    const workspace = readdirSync(join(repoRoot, 'packages')).filter((d) => existsSync(join(repoRoot, 'packages', d, 'package.json')));
    assert.deepEqual([...installed.keys()].sort(), workspace.map((d) => `@huatuo/${d}`).sort());
    for (const [name, manifest] of installed) {
      assert.equal(manifest.scripts, undefined, `${name}: the tarball's package.json keeps the refusal of workspace packing`);
      for (const [where, target] of [...targets(manifest.exports, 'exports'), ...targets(manifest.imports ?? {}, 'imports')]) {
        assert.ok(existsSync(join(project, 'node_modules', name, target)), `${name} ${where}: ${target} is not in the tarball`);
        assert.match(target, /\.(d\.ts|js)$/, `${name} ${where}: ${target} is not compiled output, yet a consumer whose project sets that condition gets it`);
      }
    }
  });

  it('ships in dist only what its src compiles to, not the output of sources since removed', () => {
    for (const name of installed.keys()) {
      const folder = join(project, 'node_modules', name);
      const compiled = readdirSync(join(folder, 'dist'), { recursive: true, encoding: 'utf8' }).filter((f) => /\.(js|d\.ts|js\.map)$/.test(f));
      const orphans = compiled.filter((f) => !existsSync(join(folder, 'src', f.replace(/\.(js|d\.ts|js\.map)$/, '.ts'))));
      assert.deepEqual(orphans, [], `${name}: dist files without a source in src`);
    }
  });

  it("ships llama-tokenizer-js's MIT notice beside the LLaMA tokenizer files made from its pieces and merges", () => {
    const assets = join(project, 'node_modules/@huatuo/llama/assets/llama-tokenizer');
    assert.match(readFileSync(join(assets, 'SOURCE.md'), 'utf8'), /`llama-tokenizer-js` \(MIT, copyright 2023 belladore\.ai; its licence is\s+`LICENSE-llama-tokenizer-js\.md`/);
    const notice = readFileSync(join(repoRoot, 'node_modules/llama-tokenizer-js/LICENSE.md'), 'utf8');
    assert.match(notice, /^MIT LICENSE\s+Copyright 2023 belladore\.ai/);
    assert.equal(readFileSync(join(assets, 'LICENSE-llama-tokenizer-js.md'), 'utf8'), notice);
  });

  it('plain Node imports every entry point, and the browser builds of those that have them', () => {
    const loaded = JSON.parse(assertRan(runIn(project, process.execPath, ['import-entries.mjs']), 'import-entries.mjs')) as Record<string, number>;
    const subpaths = [...installed.values()].flatMap((m) => Object.keys(m.exports).map((s) => m.name + s.slice(1)));
    assert.deepEqual(Object.keys(loaded).sort(), subpaths.sort());
    for (const [specifier, names] of Object.entries(loaded)) assert.ok(names > 0, `${specifier} exports nothing`);
    const browser = JSON.parse(assertRan(runIn(project, process.execPath, ['--conditions=browser', 'import-entries.mjs']), 'import-entries.mjs under the browser condition')) as Record<string, number>;
    assert.deepEqual(Object.keys(browser).sort(), ['@huatuo/llama', '@huatuo/llama/internal', '@huatuo/sft', '@huatuo/sft/internal', '@huatuo/tensor', '@huatuo/tensor/internal']);
  });

  it('loads the compiled files, not TypeScript, when the consumer runs Node with the common `source` condition', () => {
    const loaded = JSON.parse(assertRan(runIn(project, process.execPath, ['--conditions=source', 'import-entries.mjs']), 'import-entries.mjs under the source condition')) as Record<string, number>;
    assert.deepEqual(Object.keys(loaded).sort(), [...installed.values()].flatMap((m) => Object.keys(m.exports).map((s) => m.name + s.slice(1))).sort());
  });

  it('computes a matmul and its gradients on WebGPU as the CPU reference does, quantizes on worker threads and reads the shipped data', () => {
    const report = JSON.parse(assertRan(runIn(project, process.execPath, ['compute.mjs']), 'compute.mjs')) as { entities: number; demoRecords: number };
    assert.ok(report.entities > 0 && report.demoRecords > 0);
  });

  it('runs huatuo-train from node_modules/.bin through its shebang', () => {
    const cli = installed.get('@huatuo/cli')!;
    assert.deepEqual(Object.keys(cli.bin ?? {}), ['huatuo-train']);
    const help = assertRan(runIn(project, join(project, 'node_modules/.bin/huatuo-train'), ['--help']), 'huatuo-train --help');
    for (const command of ['train', 'generate', 'merge', 'eval', 'plan', 'serve', 'sus', 'gen-data']) assert.match(help, new RegExp(`^  ${command} `, 'm'));
    assert.equal(assertRan(runIn(project, join(project, 'node_modules/.bin/huatuo-train'), ['--version']), 'huatuo-train --version').trim(), cli.version);
  });

  for (const [resolution, extra] of [
    ['node16', { module: 'node16' }],
    ['bundler', { module: 'esnext', customConditions: ['source'] }],
  ] as const) {
    it(`type-checks a consumer against the shipped declarations under moduleResolution ${resolution}${'customConditions' in extra ? ' with the source condition' : ''}`, () => {
      const entries = [...installed.values()].flatMap((m) => Object.keys(m.exports).map((s, i) => `export * as ${m.name.slice('@huatuo/'.length)}${i} from '${m.name + s.slice(1)}';`));
      writeFileSync(join(project, 'entries.ts'), `${entries.join('\n')}\n`);
      const { options, errors } = ts.convertCompilerOptionsFromJson(
        { target: 'ES2022', moduleResolution: resolution, strict: true, noEmit: true, skipLibCheck: false, types: ['node'], ...extra },
        project,
      );
      assert.deepEqual(errors, []);
      const program = ts.createProgram({ rootNames: [join(project, 'consumer.ts'), join(project, 'entries.ts')], options });
      // Every file but TypeScript's own libraries and the consumer's @types/node (checking those takes most of the time).
      const checked = program.getSourceFiles().filter((f) => !program.isSourceFileDefaultLibrary(f) && !f.fileName.includes('/node_modules/@types/node/'));
      const diagnostics = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(), ...checked.flatMap((f) => [...program.getSyntacticDiagnostics(f), ...program.getSemanticDiagnostics(f)])];
      assert.deepEqual(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n') + (d.file ? ` (${d.file.fileName})` : '')), []);
      const sources = program.getSourceFiles().map((f) => relative(project, f.fileName)).filter((f) => /^node_modules\/@huatuo\/.*(?<!\.d)\.ts$/.test(f));
      assert.deepEqual(sources, [], 'TypeScript sources of the installed packages in the consumer program');
    });
  }
});
