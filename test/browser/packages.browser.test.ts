// @huatuo/llama and @huatuo/sft bundled for a browser: the "browser" export condition leaves out
// every module that needs Node, so the bundles import no Node built-ins and resolve completely.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build } from 'esbuild';

const root = new URL('../..', import.meta.url).pathname;

const bundles = new Map<string, Promise<{ code: string; inputs: string[]; exports: string[] }>>();

/** `contents` bundled for a browser (built once per contents): its code, input files and exported names. */
function browserBundle(contents: string): Promise<{ code: string; inputs: string[]; exports: string[] }> {
  let bundle = bundles.get(contents);
  if (!bundle) {
    bundle = build({
      stdin: { contents, resolveDir: root, loader: 'ts' },
      bundle: true,
      write: false,
      platform: 'browser',
      format: 'esm',
      conditions: ['source', 'browser'],
      metafile: true,
      logLevel: 'silent',
    }).then((result) => ({
      code: result.outputFiles[0]!.text,
      inputs: Object.keys(result.metafile.inputs),
      exports: Object.values(result.metafile.outputs)[0]!.exports,
    }));
    bundles.set(contents, bundle);
  }
  return bundle;
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
  assert.ok(bundle.inputs.some((p) => p.endsWith('packages/tensor/src/quant/pool-browser.ts')), '#quant-pool did not resolve to quant/pool-browser.ts');
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

test('each Node entry exports every name of its browser entry', async () => {
  for (const pkg of ['llama', 'sft']) {
    const { exports } = await browserBundle(`export * from '@huatuo/${pkg}';`);
    assert.ok(exports.length > 50, `@huatuo/${pkg}: the browser bundle lists only ${exports.length} exports`);
    const node = new Set(Object.keys(await import(`@huatuo/${pkg}`)));
    assert.deepEqual(exports.filter((name) => !node.has(name)), [], `@huatuo/${pkg}: exported in a browser but not in Node`);
  }
});
