// The web app's "Trust this folder's tokenizer patterns" boxes in headless Chromium: a base folder whose tokenizer.json
// splits on \s+$ (as DeepSeek LLM's does, a pattern refused at load for backtracking on a run of spaces) is refused,
// the page's error line naming the box, and loads with the box ticked, answering as Node's loadBaseModel with
// trustTokenizerPatterns does (its prompt's ids are not those of the same tokenizer without \s+$). So is an adapter
// on a resized vocabulary shipping that tokenizer, with the box under the adapter pickers.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { HfTokenizer } from '@huatuo/llama';
import { generatePrompt, loadAdapterWithTokenizer, loadBaseModel, MED_TEMPLATE } from '@huatuo/sft';
import { CONFIG, deepSeekStyleTokenizerJson } from '../llama/pattern-tokenizers.js';
import { greedyAnswer, nodeDemoModel, writeSavedModulesAdapter, writeTinyHfFolder } from './web-app-node.js';
import { askPage, openApp, serveApp, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

// "x  (ab)" splits into "x " and " (" before \s+$ splits "x" from its space: ids 2, 5 where "x " alone is 10.
const QUESTION = 'x  (ab)';
const MAX_TOKENS = 8;
const PIECES = 15;
// A tokenizer class without special-token defaults: under config.json's model_type llama, transformers' LlamaTokenizerFast
// would add "<unk>" and "<s>", which this 15-piece vocabulary lacks, past the model's embedding rows.
const TOKENIZER_FILES = { 'tokenizer.json': JSON.stringify(deepSeekStyleTokenizerJson()), 'tokenizer_config.json': JSON.stringify({ ...CONFIG, tokenizer_class: 'PreTrainedTokenizerFast' }) };

const ask = (page: Page) => askPage(page, QUESTION, MAX_TOKENS);

const refusal = (where: string) =>
  new RegExp(`tokenizer\\.json: pre_tokenizer\\.pretokenizers\\[3\\]\\.pattern\\.Regex is "\\\\\\\\s\\+\\$".*load it with the box "Trust this folder's tokenizer patterns" ${where} ticked, .*hours$`);

test(
  "a folder whose tokenizer.json splits on \\s+$ is refused, naming the trust box, and loads with the box ticked, tokenizing as Node's loader with trustTokenizerPatterns; so does such an adapter's tokenizer",
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 300_000 },
  async () => {
    const app = await serveApp('huatuo-web-trust-');
    const { work } = app;
    try {
      const adapter = join(work, 'deepseek-style-adapter');
      const demo = await nodeDemoModel();
      await writeSavedModulesAdapter(demo, adapter, PIECES);
      demo.model.dispose();
      const folder = join(work, 'deepseek-style-llama');
      await writeTinyHfFolder(folder, { vocabSize: PIECES, files: TOKENIZER_FILES });
      for (const [name, text] of Object.entries(TOKENIZER_FILES)) writeFileSync(join(adapter, name), text);

      const { page, errors } = await openApp(app.browser, app.url);
      assert.equal(await page.isChecked('#trust-model-patterns'), false, 'the base box is off by default');
      assert.equal(await page.isChecked('#trust-adapter-patterns'), false, 'the adapter box is off by default');
      for (const box of ['trust-model-patterns', 'trust-adapter-patterns']) {
        assert.match((await page.locator(`label:has(#${box})`).getAttribute('title')) ?? '', /source you trust: a text crafted against such a pattern.*could keep this page tokenizing for hours/, `${box} states the risk`);
      }

      await page.setInputFiles('#model-folder', folder);
      await page.waitForSelector('#model-status.bad', { timeout: 60_000 });
      const refused = (await page.textContent('#model-status')) ?? '';
      assert.match(refused, refusal('under the base model'));
      assert.doesNotMatch(refused, /--trust-tokenizer-patterns/, 'the page names its box, not the command line flag');

      await page.check('#trust-model-patterns');
      await page.setInputFiles('#model-folder', folder);
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      const status = (await page.textContent('#model-status')) ?? '';
      assert.match(status, new RegExp(`^deepseek-style-llama: 1 layer, hidden 32, vocabulary ${PIECES}, `));
      const dtype = status.includes(', f16 (') ? 'f16' : 'f32';
      const answers = await ask(page);

      const reference = await loadBaseModel(folder, undefined, { trustTokenizerPatterns: true, dtype });
      const withoutTrailingSplit = deepSeekStyleTokenizerJson() as { pre_tokenizer: { pretokenizers: unknown[] } };
      withoutTrailingSplit.pre_tokenizer.pretokenizers.splice(3, 1);
      const untrailed = HfTokenizer.fromJson(withoutTrailingSplit, CONFIG, 'tokenizer.json');
      const prompt = generatePrompt(MED_TEMPLATE, QUESTION);
      assert.notDeepEqual(reference.tokenizer.encode(prompt), untrailed.encode(prompt), '\\s+$ does not change the prompt\'s ids');
      const nodeAnswer = await greedyAnswer(reference, QUESTION, MAX_TOKENS);
      assert.notEqual(await greedyAnswer({ ...reference, tokenizer: untrailed }, QUESTION, MAX_TOKENS), nodeAnswer, 'the answer does not depend on where \\s+$ splits');
      reference.model.dispose();
      assert.deepEqual(answers, { base: nodeAnswer, adapted: null }, "the page's answer is not what Node computes with the trusted tokenizer");

      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      await page.waitForFunction(() => /^Tiny demo model/.test(document.getElementById('model-status')!.textContent ?? ''));
      await page.setInputFiles('#adapter-folder', adapter);
      await page.waitForSelector('#adapter-status.bad');
      const adapterRefused = (await page.textContent('#adapter-status')) ?? '';
      assert.match(adapterRefused, refusal('under the adapter pickers'));
      assert.doesNotMatch(adapterRefused, /--trust-tokenizer-patterns/);
      await page.check('#trust-adapter-patterns');
      await page.setInputFiles('#adapter-folder', adapter);
      await page.waitForFunction(() => /loaded from deepseek-style-adapter; on its own vocabulary of 15 pieces, with its tokenizer \(15 pieces\)$/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      const adapted = (await ask(page)).adapted;
      const nodeAdapted = await nodeDemoModel();
      assert.equal(await loadAdapterWithTokenizer(nodeAdapted, adapter, { trustTokenizerPatterns: true }), adapter);
      const nodeAdaptedAnswer = await greedyAnswer(nodeAdapted, QUESTION, MAX_TOKENS);
      nodeAdapted.model.dispose();
      assert.equal(adapted, nodeAdaptedAnswer, "the adapted answer is not what Node computes with the adapter's trusted tokenizer");
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await app.close();
    }
  },
);
