// The web app's adapter status line, in headless Chromium, counts what the adapter's files hold: the parameters and
// bytes of adapter_model.safetensors as serializeAdapter (and saveAdapter) writes it, the trained copies of
// modules_to_save (embed_tokens, lm_head) included, not the LoRA matrices alone.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bytes, count } from '../../apps/web/src/dom.js';
import { nodeDemoModel, writeSavedModulesAdapter, writeStrongAdapter } from './web-app-node.js';
import { openApp, serveApp, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

/** The parameters and tensor bytes of an adapter_model.safetensors, read from its header. */
function sizeOf(file: string): { parameters: number; bytes: number } {
  const data = readFileSync(file);
  const headerLength = Number(data.readBigUInt64LE(0));
  const header = JSON.parse(data.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
  const parameters = Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .reduce((s, [, t]) => {
      assert.equal(t.dtype, 'F32');
      return s + t.shape.reduce((a, b) => a * b, 1);
    }, 0);
  return { parameters, bytes: data.length - 8 - headerLength };
}

test(
  "the adapter status line counts the parameters and bytes the adapter's weights file holds, with the trained copies of modules_to_save",
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 300_000 },
  async () => {
    const app = await serveApp('huatuo-web-status-');
    try {
      const withCopies = join(app.work, 'saved-modules-adapter');
      const copiesBase = await nodeDemoModel();
      await writeSavedModulesAdapter(copiesBase, withCopies);
      copiesBase.model.dispose();
      const plain = join(app.work, 'plain-adapter');
      const plainBase = await nodeDemoModel();
      await writeStrongAdapter(plainBase, plain);
      plainBase.model.dispose();

      const { page, errors } = await openApp(app.browser, app.url);
      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      for (const [dir, trained] of [[withCopies, ' with the trained embed_tokens and lm_head'], [plain, '']] as const) {
        const name = dir.slice(app.work.length + 1);
        await page.setInputFiles('#adapter-folder', dir);
        await page.waitForFunction((n) => new RegExp(`loaded from ${n}$`).test(document.getElementById('adapter-status')!.textContent ?? ''), name);
        const status = (await page.textContent('#adapter-status')) ?? '';
        const size = sizeOf(join(dir, 'adapter_model.safetensors'));
        assert.ok(status.includes(`: ${count(size.parameters)} parameters${trained} (${bytes(size.bytes)} in f32), loaded from ${name}`), `${status}; the file holds ${size.parameters} parameters, ${size.bytes} bytes`);
      }
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await app.close();
    }
  },
);
