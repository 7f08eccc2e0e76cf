// An adapter saved into a browser's run files (IndexedDB) over an earlier one commits whole: where the storage fails
// part way (a full quota at adapter_config.json), the earlier adapter is left byte for byte, never its config beside the
// new weights, and the next save writes the new one. Runs the sft package bundled for the browser in headless Chromium.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { openScriptPage, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

const here = dirname(fileURLToPath(import.meta.url));

interface PageApi {
  saveAdapterVersion(version: 'old' | 'new', quotaFullAtConfig: boolean): Promise<string | null>;
  readAdapterFolder(): Promise<Record<string, number[]>>;
}

test(
  'an adapter saved into IndexedDB over an earlier one, failing at adapter_config.json, leaves the earlier adapter byte for byte',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 180_000 },
  async () => {
    const result = await build({ entryPoints: [join(here, 'adapter-save-idb-entry.ts')], bundle: true, write: false, platform: 'browser', format: 'esm', conditions: ['source', 'browser'], logLevel: 'silent' });
    const code = result.outputFiles[0]!.text;
    const { tab, errors, close } = await openScriptPage(code, 'adapter save', 'adapter-save-chromium-', 'saveAdapterVersion');
    try {
      const save = (version: 'old' | 'new', quotaFull: boolean) => tab.evaluate(([v, q]) => (globalThis as unknown as PageApi).saveAdapterVersion(v, q), [version, quotaFull] as const);
      const folder = () => tab.evaluate(() => (globalThis as unknown as PageApi).readAdapterFolder());

      assert.equal(await save('old', false), null);
      const old = await folder();
      assert.deepEqual(Object.keys(old), ['adapter_config.json', 'adapter_model.safetensors']);
      const failed = await save('new', true);
      assert.match(failed ?? 'the save succeeded', /QuotaExceededError|quota/);
      assert.deepEqual(await folder(), old, 'the earlier adapter is left byte for byte');
      assert.equal(await save('new', false), null);
      const saved = await folder();
      assert.notDeepEqual(saved['adapter_model.safetensors'], old['adapter_model.safetensors'], 'the new weights');
      assert.match(String.fromCharCode(...saved['adapter_config.json']!), /"r": 8/);
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await close();
    }
  },
);
