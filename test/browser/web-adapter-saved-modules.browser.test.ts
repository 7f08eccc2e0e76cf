// The web app's adapter in and out with PEFT's modules_to_save in headless Chromium: an adapter that
// trains embed_tokens and lm_head on the base's vocabulary loads, answers as Node answers with it (the
// base pane without its copies), and downloads as saveAdapter writes it; one trained on a resized
// vocabulary is refused, naming the merge that makes it usable, and the adapter before it stays.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { buildWeb, serveWeb } from '../../apps/web/scripts/serve.js';
import { greedyAnswer, nodeDemoModel, writeSavedModulesAdapter } from './web-app-node.js';

const CHROMIUM = '/usr/bin/chromium';
const QUESTION = '头痛怎么办？';
const MAX_TOKENS = 8;

async function ask(page: Page): Promise<{ base: string; adapted: string }> {
  await page.fill('#question', QUESTION);
  await page.fill('#max-tokens', String(MAX_TOKENS));
  await page.evaluate(() => {
    delete document.getElementById('answer-base')!.dataset.answer;
    delete document.getElementById('answer-adapted')!.dataset.answer;
  });
  await page.click('#ask');
  await page.waitForFunction(() => document.getElementById('answer-adapted')!.dataset.answer !== undefined, null, { timeout: 120_000 });
  return { base: (await page.getAttribute('#answer-base', 'data-answer'))!, adapted: (await page.getAttribute('#answer-adapted', 'data-answer'))! };
}

test(
  "an adapter with modules_to_save loads, answers and downloads in the page; one on a resized vocabulary is refused",
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing; install Debian's chromium to run the browser test`, timeout: 300_000 },
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'huatuo-web-saved-'));
    const site = join(work, 'site');
    await buildWeb({ outDir: site });
    const server = await serveWeb({ port: 0, root: site });
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-quic'] });
    const context = await browser.newContext({ acceptDownloads: true });
    try {
      const plain = await nodeDemoModel();
      const baseAnswer = await greedyAnswer(plain, QUESTION, MAX_TOKENS);
      plain.model.dispose();
      const node = await nodeDemoModel();
      const same = join(work, 'saved-modules-adapter');
      await writeSavedModulesAdapter(node, same);
      const adaptedAnswer = await greedyAnswer(node, QUESTION, MAX_TOKENS);
      node.model.dispose();
      const resizedBase = await nodeDemoModel();
      const resized = join(work, 'resized-adapter');
      await writeSavedModulesAdapter(resizedBase, resized, 8);
      resizedBase.model.dispose();
      assert.notEqual(adaptedAnswer, baseAnswer, 'the adapter does not change the answer');

      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      await page.waitForSelector('#device.ok', { timeout: 60_000 });
      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });

      await page.setInputFiles('#adapter-folder', same);
      await page.waitForFunction(() => /loaded from/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      const answers = await ask(page);
      assert.equal(answers.adapted, adaptedAnswer, 'the answer with the adapter is not what Node computes');
      assert.equal(answers.base, baseAnswer, 'the base answer used the trained copies');

      for (const which of ['config', 'weights']) {
        const [d] = await Promise.all([page.waitForEvent('download'), page.click(`#download-${which}`)]);
        const path = join(work, `downloaded-${d.suggestedFilename()}`);
        await d.saveAs(path);
        assert.ok(readFileSync(path).equals(readFileSync(join(same, d.suggestedFilename()))), `${d.suggestedFilename()} differs from the one saveAdapter wrote`);
      }

      await page.setInputFiles('#adapter-folder', resized);
      await page.waitForSelector('#adapter-status.bad');
      assert.match(
        (await page.textContent('#adapter-status')) ?? '',
        /adapter_model\.safetensors trains embed_tokens on a vocabulary of 32008 pieces, but the base has 32000: .*huatuo merge --base/,
      );
      const after = await ask(page);
      assert.equal(after.adapted, adaptedAnswer, 'the refused adapter changed the loaded one');
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await browser.close();
      await server.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
);
