// @huatuo/llama and @huatuo/sft bundled for a browser: the "browser" export condition leaves out
// every module that needs Node, so the bundles import no Node built-ins and resolve completely.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { build } from 'esbuild';

const root = new URL('../..', import.meta.url).pathname;

async function browserBundle(contents: string): Promise<{ code: string; inputs: string[] }> {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: 'ts' },
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    conditions: ['source', 'browser'],
    metafile: true,
    logLevel: 'silent',
  });
  return { code: result.outputFiles[0]!.text, inputs: Object.keys(result.metafile.inputs) };
}

function assertBrowserSafe(what: string, { code, inputs }: { code: string; inputs: string[] }): void {
  const nodeModules = inputs.filter((p) => /-node\.ts$|\/platform\/node\.ts$/.test(p));
  assert.deepEqual(nodeModules, [], `${what}: the bundle includes Node-only modules`);
  const nodeImports = code.match(/["']node:[a-z_/]+["']/g) ?? [];
  assert.deepEqual(nodeImports, [], `${what}: the bundle imports Node built-ins`);
  assert.deepEqual(code.match(/^\s*import\s[^;]*from\s*["'][^"']+["']/gm) ?? [], [], `${what}: the bundle has unresolved imports`);
}

test('the browser bundle of @huatuo/llama has no node: imports and no *-node module', async () => {
  const bundle = await browserBundle(`export * from '@huatuo/llama';`);
  assert.ok(bundle.inputs.some((p) => p.endsWith('packages/llama/src/browser.ts')), 'the browser condition did not select src/browser.ts');
  assertBrowserSafe('@huatuo/llama', bundle);
});

test("the browser bundle of @huatuo/sft's trainer keeps its run files in IndexedDB and imports no Node built-ins", async () => {
  const bundle = await browserBundle(`export * from '@huatuo/sft';`);
  assert.ok(bundle.inputs.some((p) => p.endsWith('packages/sft/src/trainer.ts')), 'the trainer is not in the bundle');
  assert.ok(bundle.inputs.some((p) => p.endsWith('packages/sft/src/platform/browser.ts')), '#platform did not resolve to platform/browser.ts');
  assertBrowserSafe('@huatuo/sft', bundle);
});

test('the Node entries still carry the Node-only surface (folders, the server)', async () => {
  const llama = await import('@huatuo/llama');
  const sft = await import('@huatuo/sft');
  assert.equal(typeof llama.loadLlama, 'function');
  assert.equal(typeof llama.saveAdapter, 'function');
  assert.equal(typeof sft.loadRecords, 'function');
  assert.equal(typeof sft.startServer, 'function');
  assert.equal(sft.runFiles.join('a', 'b'), 'a/b');
});

/** Names each module re-exports from an entry file: module -> sorted names. */
function reexports(file: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of readFileSync(file, 'utf8').matchAll(/export (?:type )?\{([^}]*)\} from '([^']+)'/g)) {
    const names = m[1]!.split(',').map((n) => n.trim()).filter(Boolean);
    out.set(m[2]!, [...(out.get(m[2]!) ?? []), ...names].sort());
  }
  return out;
}

test('each browser entry re-exports everything its Node entry takes from the same browser-safe module', () => {
  for (const pkg of ['llama', 'sft']) {
    const node = reexports(`${root}packages/${pkg}/src/index.ts`);
    const browser = reexports(`${root}packages/${pkg}/src/browser.ts`);
    for (const [module, names] of browser) assert.deepEqual(names, node.get(module), `@huatuo/${pkg}: browser.ts and index.ts differ on ${module}`);
  }
});
