// The web app's data picker in headless Chromium: a picked Parquet file loads its records through
// the reader the page fetches only then (a chunk of its own origin), and a bad one lists its problems.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openApp, serveApp, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../fixtures/sft/parquet/${name}`, import.meta.url)));

test(
  'a picked Parquet file loads its records in the page, the reader fetched only then; a bad one is refused by column',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 180_000 },
  async () => {
    const app = await serveApp('huatuo-web-data-');
    try {
      const scripts: string[] = [];
      const { page, errors } = await openApp(app.browser, app.url, (p) => p.on('request', (r) => void (r.resourceType() === 'script' && scripts.push(new URL(r.url()).pathname))));
      await page.setInputFiles('#data-file', { name: 'qa.jsonl', mimeType: 'application/json', buffer: fixture('qa.jsonl') });
      await page.waitForSelector('#data-status.ok');
      assert.deepEqual(scripts, ['/app.js'], 'scripts fetched before any Parquet file was picked');

      await page.setInputFiles('#data-file', { name: 'train-00000-of-00001.parquet', mimeType: 'application/octet-stream', buffer: fixture('qa-repeated-snappy.parquet') });
      await page.waitForFunction(() => /parquet: 2160 records/.test(document.getElementById('data-status')!.textContent ?? ''));
      assert.ok(scripts.length > 1 && scripts.slice(1).every((s) => s.startsWith('/chunks/')), `scripts: ${scripts.join(', ')}`);
      assert.match((await page.textContent('#data-sample')) ?? '', /十二指肠溃疡/);

      await page.setInputFiles('#data-file', { name: 'integer-output.parquet', mimeType: 'application/octet-stream', buffer: fixture('integer-output.parquet') });
      await page.waitForSelector('#data-errors:not([hidden])');
      assert.match((await page.textContent('#data-errors')) ?? '', /column "output" holds INT64/);
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await app.close();
    }
  },
);
