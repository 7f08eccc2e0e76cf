// An adapter saved into a browser's run files (IndexedDB) over an earlier one commits whole: where the storage fails
// part way (a full quota at adapter_config.json), the earlier adapter is left byte for byte, never its config beside the
// new weights, and the next save writes the new one. Runs the sft package bundled for the browser in headless Chromium.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';

interface PageApi {
  saveAdapterVersion(version: 'old' | 'new', quotaFullAtConfig: boolean): Promise<string | null>;
  readAdapterFolder(): Promise<Record<string, number[]>>;
}

test(
  'an adapter saved into IndexedDB over an earlier one, failing at adapter_config.json, leaves the earlier adapter byte for byte',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing; install Debian's chromium to run the browser test`, timeout: 180_000 },
  async () => {
    const result = await build({ entryPoints: [join(here, 'adapter-save-idb-entry.ts')], bundle: true, write: false, platform: 'browser', format: 'esm', conditions: ['source', 'browser'], logLevel: 'silent' });
    const code = result.outputFiles[0]!.text;
    const page = `<!doctype html><meta charset="utf-8"><title>adapter save</title><script type="module" src="/entry.js"></script>`;
    const server = createServer((req, res) => {
      if (req.url === '/entry.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(code);
      else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(page);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const profile = mkdtempSync(join(tmpdir(), 'adapter-save-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    try {
      const tab = await context.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (e) => errors.push(e.message));
      await tab.goto(`http://127.0.0.1:${port}/`);
      await tab.waitForFunction(() => typeof (globalThis as { saveAdapterVersion?: unknown }).saveAdapterVersion === 'function', null, { timeout: 30_000 });
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
      await context.close();
      await new Promise((resolve) => server.close(resolve));
      rmSync(profile, { recursive: true, force: true });
    }
  },
);
