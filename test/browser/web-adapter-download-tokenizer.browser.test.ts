// The web app's download of an adapter that brings its own vocabulary, in headless Chromium: loaded with its
// tokenizer (Chinese-LLaMA-Alpaca's way: LLaMA's tokenizer.model with added tokens, trained embed_tokens and lm_head on
// the resized vocabulary), the page offers its tokenizer files beside adapter_config.json and
// adapter_model.safetensors, and the downloaded folder is byte for byte what Node's saveAdapter writes for the same
// adapter, and loads back (in Node with loadAdapterWithTokenizer, and in the page) giving the same greedy answer. An
// adapter on the base's vocabulary offers no tokenizer files.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { llamaTokenizerDir, saveAdapter } from '@huatuo/llama';
import { DEMO_MODEL_NAME, loadAdapterWithTokenizer, type BaseModel } from '@huatuo/sft';
import { greedyAnswer, nodeDemoModel, writeSavedModulesAdapter, writeStrongAdapter } from './web-app-node.js';
import { askPage, openApp, serveApp, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

const QUESTION = '头痛怎么办？';
const MAX_TOKENS = 8;
/** LLaMA's 32000 pieces and 8 added tokens `<med_0>` .. `<med_7>`. */
const RESIZED_PIECES = 32008;

/** Writes a resized adapter for the demo model into `dir`, with the tokenizer files it was trained with. */
async function writeResizedAdapter(dir: string): Promise<void> {
  const base = await nodeDemoModel();
  await writeSavedModulesAdapter(base, dir, RESIZED_PIECES);
  base.model.dispose();
  for (const name of ['tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(llamaTokenizerDir(), name), join(dir, name));
  // As transformers' older save_pretrained writes it: one line, no newline at the end.
  writeFileSync(join(dir, 'added_tokens.json'), JSON.stringify(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`<med_${i}>`, 32000 + i]))));
  writeFileSync(join(dir, 'chat_template.jinja'), "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\r\n{% endfor %}assistant:");
}

/** The demo model with the adapter of `dir` loaded as `huatuo-train generate --adapter` loads it. */
async function nodeWithAdapter(dir: string): Promise<BaseModel> {
  const base = await nodeDemoModel();
  assert.equal(await loadAdapterWithTokenizer(base, dir), dir);
  return base;
}

/** The files of a folder by name. */
function filesOf(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name))]));
}

/** Clicks every download button of the adapter card that is shown, saving each file into `dir`. */
async function downloadAll(page: Page, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const buttons = await page.locator('#download-config, #download-weights, #download-tokenizer button').filter({ visible: true }).all();
  for (const button of buttons) {
    const [d] = await Promise.all([page.waitForEvent('download'), button.click()]);
    const name = d.suggestedFilename();
    assert.ok(!existsSync(join(dir, name)), `${name} was downloaded twice`);
    await d.saveAs(join(dir, name));
  }
}

test(
  'an adapter on a resized vocabulary downloads from the page with its tokenizer files, as saveAdapter writes it, and loads back with the same answer; a plain adapter downloads without',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 300_000 },
  async () => {
    const app = await serveApp('huatuo-web-download-');
    const { work } = app;
    const context = await app.browser.newContext({ acceptDownloads: true });
    try {
      const picked = join(work, 'chinese-alpaca-lora');
      await writeResizedAdapter(picked);
      // Node's saveAdapter of the same loaded adapter, and its answer.
      const reference = await nodeWithAdapter(picked);
      assert.equal(reference.tokenizer.vocabSize, RESIZED_PIECES);
      const resizedAnswer = await greedyAnswer(reference, QUESTION, MAX_TOKENS);
      const saved = join(work, 'saved-by-node');
      await saveAdapter(reference.model, saved, DEMO_MODEL_NAME);
      reference.model.dispose();
      const plain = join(work, 'plain-adapter');
      const plainBase = await nodeDemoModel();
      await writeStrongAdapter(plainBase, plain);
      plainBase.model.dispose();
      const tokenizerFiles = ['added_tokens.json', 'chat_template.jinja', 'special_tokens_map.json', 'tokenizer.model', 'tokenizer_config.json'];
      assert.deepEqual([...filesOf(saved).keys()], ['adapter_config.json', 'adapter_model.safetensors', ...tokenizerFiles]);

      const { page, errors } = await openApp(context, app.url);
      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      await page.setInputFiles('#adapter-folder', picked);
      await page.waitForFunction(() => /loaded from chinese-alpaca-lora; on its own vocabulary of 32008 pieces/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.equal((await askPage(page, QUESTION, MAX_TOKENS)).adapted, resizedAnswer, "the page's answer with the resized adapter is not Node's");

      const downloaded = join(work, 'downloaded');
      await downloadAll(page, downloaded);
      const fromPage = filesOf(downloaded);
      assert.deepEqual([...fromPage.keys()], [...filesOf(saved).keys()], 'the page downloads other files than saveAdapter writes');
      for (const [name, bytes] of filesOf(saved)) assert.ok(fromPage.get(name)!.equals(bytes), `the downloaded ${name} differs from the one saveAdapter wrote`);
      for (const name of tokenizerFiles) assert.ok(fromPage.get(name)!.equals(readFileSync(join(picked, name))), `the downloaded ${name} differs from the picked one`);

      const again = await nodeWithAdapter(downloaded);
      assert.equal(again.tokenizer.vocabSize, RESIZED_PIECES);
      assert.equal(await greedyAnswer(again, QUESTION, MAX_TOKENS), resizedAnswer, 'the downloaded folder answers otherwise in Node');
      again.model.dispose();

      await page.setInputFiles('#adapter-folder', plain);
      await page.waitForFunction(() => /loaded from plain-adapter$/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.equal(await page.locator('#download-tokenizer button').count(), 0, 'an adapter on the base vocabulary offers tokenizer files');
      const downloadedPlain = join(work, 'downloaded-plain');
      await downloadAll(page, downloadedPlain);
      assert.deepEqual(filesOf(downloadedPlain), filesOf(plain), 'the plain adapter downloads other bytes than saveAdapter wrote');

      await page.setInputFiles('#adapter-folder', downloaded);
      await page.waitForFunction(() => /loaded from downloaded; on its own vocabulary of 32008 pieces/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.equal((await askPage(page, QUESTION, MAX_TOKENS)).adapted, resizedAnswer, 'the downloaded folder answers otherwise in the page');
      assert.equal(await page.isVisible('#download-tokenizer'), true, 'the downloaded adapter offers no tokenizer files');
      await page.click('#remove-adapter');
      assert.equal(await page.isVisible('#download-tokenizer'), false, 'the removed adapter still offers its tokenizer files');
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await app.close();
    }
  },
);
