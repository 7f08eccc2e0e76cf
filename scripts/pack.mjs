// Writes the publishable tarball of every package (packages/*) into a folder: `node scripts/pack.mjs <folder>`,
// then `npm publish <folder>/huatuo-<name>-<version>.tgz` for each. A tarball holds what `npm pack` packs, less
// two things: the `source` export condition of package.json (this repository's route to the TypeScript
// sources, which a consumer whose own project sets that common condition would otherwise load and
// type-check), and compiled files whose source is gone (tsc --build leaves them in dist). Builds first
// (kernels check, tsc --build) unless --skip-build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The export condition naming this repository's TypeScript sources. */
export const SOURCE_CONDITION = 'source';
/** The lifecycle script that refuses `npm pack` and `npm publish` of a workspace package (scripts/refuse-workspace-pack.mjs). */
const REFUSAL_SCRIPT = 'prepack';

/** A copy of an exports or imports map without the source condition, at any depth. */
export function withoutSourceCondition(map) {
  if (typeof map !== 'object' || map === null) return map;
  return Object.fromEntries(Object.entries(map).filter(([key]) => key !== SOURCE_CONDITION).map(([key, value]) => [key, withoutSourceCondition(value)]));
}

/** The package.json a tarball holds: no source condition, no refusal of workspace packing. */
export function publishedManifest(manifest) {
  const out = { ...manifest, exports: withoutSourceCondition(manifest.exports) };
  if (manifest.imports) out.imports = withoutSourceCondition(manifest.imports);
  if (manifest.scripts) {
    const { [REFUSAL_SCRIPT]: _refusal, ...scripts } = manifest.scripts;
    if (Object.keys(scripts).length > 0) out.scripts = scripts;
    else delete out.scripts;
  }
  return out;
}

/** The endings of what tsc writes for a src/*.ts file. */
const COMPILED = /\.(js|d\.ts|js\.map)$/;

/** The compiled files under `folder`/dist without a source in `folder`/src: left by a build of a file since removed. */
export function orphanedOutputs(folder) {
  const compiled = readdirSync(join(folder, 'dist'), { recursive: true, encoding: 'utf8' }).filter((f) => COMPILED.test(f));
  return compiled.filter((f) => !existsSync(join(folder, 'src', f.replace(COMPILED, '.ts')))).map((f) => join('dist', f));
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options });
  if (result.error) throw new Error(`pack: could not run ${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`pack: \`${command} ${args.join(' ')}\` exited with ${result.status}${result.stdout ? `:\n${result.stdout}` : ''}`);
  return result.stdout;
}

/** `npm pack` of `specs` (workspace flags or folders) into `destination`: npm's JSON report, one entry per tarball. */
function npmPack(specs, destination, cwd) {
  return JSON.parse(run('npm', ['pack', ...specs, '--pack-destination', destination, '--json', '--offline', '--ignore-scripts'], { cwd }));
}

/** Packs every package into `destination`; returns the tarballs' paths, by package name. */
export function packAll(destination, { build = true } = {}) {
  if (build) {
    run(process.execPath, [join(root, 'scripts/gen-kernels.mjs'), '--check'], { stdio: 'inherit' });
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--build'], { stdio: 'inherit' });
  }
  mkdirSync(destination, { recursive: true });
  const staging = mkdtempSync(join(tmpdir(), 'huatuo-pack-'));
  try {
    const packed = npmPack(['--workspaces'], staging, root);
    const folders = packed.map(({ filename }) => {
      const folder = join(staging, filename.replace(/\.tgz$/, ''));
      mkdirSync(folder);
      run('tar', ['-xzf', join(staging, filename), '-C', folder, '--strip-components=1']);
      const orphans = orphanedOutputs(folder);
      for (const file of orphans) rmSync(join(folder, file));
      if (orphans.length > 0) console.error(`pack: left out of ${filename} (no source in src: an earlier build's; deleting the package's dist and building again clears them): ${orphans.join(', ')}`);
      const manifestPath = join(folder, 'package.json');
      writeFileSync(manifestPath, `${JSON.stringify(publishedManifest(JSON.parse(readFileSync(manifestPath, 'utf8'))), null, 2)}\n`);
      return folder;
    });
    return Object.fromEntries(npmPack(folders, resolve(destination), staging).map(({ name, filename }) => [name, join(resolve(destination), filename)]));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const folder = args.find((a) => !a.startsWith('--'));
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--skip-build');
  if (!folder || unknown.length > 0) {
    console.error(`usage: node scripts/pack.mjs <folder> [--skip-build]${unknown.length ? ` (unknown: ${unknown.join(' ')})` : ''}`);
    process.exit(2);
  }
  try {
    for (const [name, path] of Object.entries(packAll(folder, { build: !args.includes('--skip-build') }))) console.log(`${name}\t${path}`);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
