// The web app's adapter in and out with PEFT's modules_to_save in headless Chromium: an adapter that
// trains embed_tokens and lm_head on the base's vocabulary loads, answers as Node answers with it (the
// base pane without its copies), and downloads as saveAdapter writes it. One trained on a resized
// vocabulary loads with the tokenizer picked with it (a folder, or its files one by one) and answers as
// Node's loadAdapterWithTokenizer does; without its tokenizer it is refused, saying what to pick, and the
// adapter before it stays. Replaced or removed, it takes its tokenizer with it: the base's answers again.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { loadAdapterWithTokenizer } from '@huatuo/sft';
import { QWEN2_TOKENIZER_CONFIG, qwen2TokenizerJson, VOCAB_SIZE as QWEN2_PIECES } from '../llama/qwen2-tokenizer-files.js';

/** The resized adapter's vocabulary: the pieces of the tokenizer it ships, as any id it generates must decode. */
const RESIZED_ROWS = QWEN2_PIECES;
import { greedyAnswer, nodeDemoModel, writeSavedModulesAdapter } from './web-app-node.js';
import { askPage, openApp, serveApp, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

const QUESTION = '头痛怎么办？';
const MAX_TOKENS = 8;

const ask = (page: Page) => askPage(page, QUESTION, MAX_TOKENS);

/** The tokens the plan counts in the data, tokenized for training. */
async function plannedTokens(page: Page): Promise<string> {
  await page.click('#demo-data');
  await page.waitForSelector('#data-status.ok');
  const plan = (await page.textContent('#plan')) ?? '';
  const tokens = /records, (.+ tokens \(longest \d+\))/.exec(plan);
  assert.ok(tokens, `the plan counts the data's tokens: ${plan}`);
  return tokens[1]!;
}

test(
  "an adapter with modules_to_save loads, answers and downloads in the page; one on a resized vocabulary answers with the tokenizer picked with it until replaced or removed, and is refused without one",
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 300_000 },
  async () => {
    const app = await serveApp('huatuo-web-saved-');
    const { work } = app;
    const context = await app.browser.newContext({ acceptDownloads: true });
    try {
      const plain = await nodeDemoModel();
      const baseAnswer = await greedyAnswer(plain, QUESTION, MAX_TOKENS);
      plain.model.dispose();
      const node = await nodeDemoModel();
      const same = join(work, 'saved-modules-adapter');
      await writeSavedModulesAdapter(node, same);
      const adaptedAnswer = await greedyAnswer(node, QUESTION, MAX_TOKENS);
      node.model.dispose();
      // An adapter on a vocabulary of 270 pieces shipping its tokenizer (not the base's 32000-piece LLaMA one), and the same without it.
      const resizedBase = await nodeDemoModel();
      const resized = join(work, 'resized-adapter');
      await writeSavedModulesAdapter(resizedBase, resized, RESIZED_ROWS);
      resizedBase.model.dispose();
      const bare = join(work, 'resized-without-tokenizer');
      const bareBase = await nodeDemoModel();
      await writeSavedModulesAdapter(bareBase, bare, RESIZED_ROWS);
      bareBase.model.dispose();
      writeFileSync(join(resized, 'tokenizer.json'), JSON.stringify(qwen2TokenizerJson()));
      writeFileSync(join(resized, 'tokenizer_config.json'), JSON.stringify(QWEN2_TOKENIZER_CONFIG));
      const reference = await nodeDemoModel();
      assert.equal(await loadAdapterWithTokenizer(reference, resized), resized);
      assert.equal(reference.tokenizer.vocabSize, QWEN2_PIECES);
      const resizedAnswer = await greedyAnswer(reference, QUESTION, MAX_TOKENS);
      reference.model.dispose();
      assert.notEqual(adaptedAnswer, baseAnswer, 'the adapter does not change the answer');
      assert.notEqual(resizedAnswer, adaptedAnswer, 'the resized adapter answers as the other one');

      const { page, errors } = await openApp(context, app.url);
      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      const baseTokens = await plannedTokens(page);
      const status = async () => (await page.textContent('#adapter-status')) ?? '';

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

      await page.setInputFiles('#adapter-folder', bare);
      await page.waitForSelector('#adapter-status.bad');
      assert.match(
        await status(),
        /^resized-without-tokenizer trains embed_tokens and lm_head on a vocabulary of 270 pieces \(the base has 32000\), but holds no tokenizer \(tokenizer\.model or tokenizer\.json\); pick the adapter folder holding the tokenizer it was trained with .*or pick those files together with adapter_config\.json and adapter_model\.safetensors$/,
      );
      assert.equal((await ask(page)).adapted, adaptedAnswer, 'the refused adapter changed the loaded one');

      await page.setInputFiles('#adapter-folder', resized);
      await page.waitForFunction(() => /loaded from resized-adapter; on its own vocabulary of 270 pieces, with its tokenizer \(270 pieces\)$/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      const withResized = await ask(page);
      assert.equal(withResized.adapted, resizedAnswer, "the answer with the resized adapter is not what Node computes with the adapter's tokenizer");
      assert.equal(withResized.base, baseAnswer, "the base answer used the adapter's vocabulary or tokenizer");
      assert.equal(await plannedTokens(page), baseTokens, "training is planned on the base's tokenizer, as a run replaces the adapter");

      await page.setInputFiles('#adapter-folder', same);
      await page.waitForFunction(() => /loaded from saved-modules-adapter$/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.deepEqual(await ask(page), answers, "replaced by an adapter on the base's vocabulary, the base's tokenizer is back");

      await page.setInputFiles('#adapter-files', readdirSync(resized).map((f) => join(resized, f)));
      await page.waitForFunction(() => /own vocabulary of 270 pieces/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.equal((await ask(page)).adapted, resizedAnswer, 'the resized adapter picked file by file');
      await page.click('#remove-adapter');
      assert.match(await status(), /^Adapter removed/);
      const removed = await ask(page);
      assert.deepEqual(removed, { base: baseAnswer, adapted: null }, 'removed, the base answers with its own vocabulary and tokenizer');
      assert.match((await page.textContent('#answer-adapted')) ?? '', /^No adapter yet/);
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await app.close();
    }
  },
);
