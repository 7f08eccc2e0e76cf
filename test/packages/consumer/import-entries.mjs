// Imports every `exports` subpath of every installed @huatuo package, as a consumer's plain Node does;
// with `--conditions=browser`, those of the packages that have browser builds. Prints the subpaths and
// how many names each exports, as JSON.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const browser = process.execArgv.includes('--conditions=browser');
const scope = join(process.cwd(), 'node_modules/@huatuo');
const loaded = {};
for (const dir of readdirSync(scope).sort()) {
  const manifest = JSON.parse(readFileSync(join(scope, dir, 'package.json'), 'utf8'));
  if (browser && !JSON.stringify([manifest.exports, manifest.imports ?? {}]).includes('"browser"')) continue;
  for (const subpath of Object.keys(manifest.exports)) {
    const specifier = manifest.name + subpath.slice(1);
    loaded[specifier] = Object.keys(await import(specifier)).length;
  }
}
console.log(JSON.stringify(loaded));
