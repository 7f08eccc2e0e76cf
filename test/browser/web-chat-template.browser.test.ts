// The web app's chat with a model's own Jinja chat template in headless Chromium: a base folder with Llama-2-chat's
// template (and generation_config.json stop ids) offers "Model's chat template" beside HuaTuo's prompt, which stays the
// default; greedily, each gives the prompt ids, generated ids and answer that Node computes through huatuo-train generate's
// path (loadBaseModel, loadChatTemplate or med_template, loadAdapterWithTokenizer, questionPrompter, answerQuestions). An
// adapter on the base's vocabulary answers with the base's template; one bringing its own tokenizer, with its folder's
// (ChatML), or, where its folder has none, with a message naming the folder. A template past the sandbox's bounds, or one
// refusing the question, is reported in the pane, naming its file.
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { llamaTokenizerDir } from '@huatuo/llama';
import {
  answerQuestions,
  DEFAULT_GENERATION,
  loadAdapterWithTokenizer,
  loadBaseModel,
  loadChatTemplate,
  MED_TEMPLATE,
  questionPrompter,
  type BaseModel,
  type ChatTemplate,
  type PromptTemplate,
} from '@huatuo/sft';
import { initWebGPU } from '@huatuo/tensor';
import { QWEN2_TOKENIZER_CONFIG, qwen2TokenizerJson, VOCAB_SIZE as QWEN2_PIECES } from '../llama/qwen2-tokenizer-files.js';
import { LLAMA2_CHAT_TEMPLATE } from '../sft/chat-folders.js';
import { greedyAnswer, writeSavedModulesAdapter, writeStrongAdapter, writeTinyHfFolder } from './web-app-node.js';
import { askPage, openApp, serveApp, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

const QUESTION = '头痛怎么办？';
const MAX_TOKENS = 8;
const BOS = 1;
const EOS = 2;

/** What a pane shows for an answer: its text and the ids of its prompt and of what was generated. */
interface PaneAnswer {
  answer: string;
  promptTokens: number[];
  tokens: number[];
}

/** Asks the page greedily with the prompt `choice` ticked; a pane without an answer (no adapter, or a refusal) gives null. */
async function ask(page: Page, choice: 'huatuo' | 'chat'): Promise<{ base: PaneAnswer | null; adapted: PaneAnswer | null }> {
  await page.check(`input[name=prompt][value=${choice}]`);
  await askPage(page, QUESTION, MAX_TOKENS);
  const pane = (id: string) =>
    page.evaluate((paneId) => {
      const { answer, promptTokens, tokens } = document.getElementById(paneId)!.dataset;
      return answer === undefined ? null : { answer, promptTokens: JSON.parse(promptTokens!) as number[], tokens: JSON.parse(tokens!) as number[] };
    }, id);
  return { base: await pane('answer-base'), adapted: await pane('answer-adapted') };
}

/** The answer `huatuo-train generate --num-beams 1 --max-new-tokens 8 --template <template>` gives, with its prompt's and generated ids. */
async function nodeAnswer(base: BaseModel, template: PromptTemplate | ChatTemplate): Promise<PaneAnswer> {
  const tokens: number[] = [];
  const [a] = await answerQuestions(base.model, base.tokenizer, template, [QUESTION], { ...DEFAULT_GENERATION, numBeams: 1, maxNewTokens: MAX_TOKENS, onToken: (e) => tokens.push(e.token) });
  return { answer: a!.answer, promptTokens: (await questionPrompter(template, base.tokenizer).prompt(QUESTION)).ids, tokens };
}

test(
  "a base folder with a chat template offers it beside HuaTuo's prompt (the default), answering with each exactly as huatuo-train generate's path does in Node, adapters with the template of the vocabulary in use",
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 600_000 },
  async () => {
    const app = await serveApp('huatuo-web-chat-template-');
    const { work } = app;
    try {
      const { page, errors } = await openApp(app.browser, app.url);
      const dtype = / · f16 · /.test((await page.textContent('#device')) ?? '') ? 'f16' : 'f32';
      assert.equal(await page.isHidden('#prompt-choice'), true, 'the prompt choice is offered before a model is chosen');

      await initWebGPU();
      const folder = join(work, 'tiny-chat');
      await writeTinyHfFolder(folder);
      const assetConfig = JSON.parse(readFileSync(join(llamaTokenizerDir(), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ ...assetConfig, chat_template: LLAMA2_CHAT_TEMPLATE }));
      // generation_config.json stops at the third token the model writes to the chat prompt, besides </s>.
      const unstopped = await loadBaseModel(folder, undefined, { dtype });
      const free = await nodeAnswer(unstopped, loadChatTemplate(folder));
      unstopped.model.dispose();
      const stop = free.tokens[2]!;
      assert.ok(free.tokens.length === MAX_TOKENS && !free.tokens.slice(0, 2).includes(stop), `the model's first tokens ${free.tokens} end early or repeat`);
      writeFileSync(join(folder, 'generation_config.json'), JSON.stringify({ bos_token_id: BOS, eos_token_id: [EOS, stop] }));

      const reference = await loadBaseModel(folder, undefined, { dtype });
      const chatTemplate = loadChatTemplate(folder);
      const nodeChat = await nodeAnswer(reference, chatTemplate);
      const nodeHuaTuo = await nodeAnswer(reference, MED_TEMPLATE);
      assert.deepEqual(nodeChat.tokens, free.tokens.slice(0, 3), "generation_config.json's stop id does not end the answer");
      assert.equal(nodeChat.promptTokens.filter((id) => id === BOS).length, 1, 'the chat prompt has no BOS or two');
      assert.deepEqual(nodeChat.promptTokens.slice(0, 2), [BOS, ...reference.tokenizer.encode('[INST]', { addBos: false }).slice(0, 1)]);
      assert.equal(nodeHuaTuo.answer, await greedyAnswer(reference, QUESTION, MAX_TOKENS), "med_template's answer is not what the page gave before");
      reference.model.dispose();

      await page.setInputFiles('#model-folder', folder);
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      assert.equal(await page.isVisible('#prompt-choice'), true, 'a folder with a chat template does not offer it');
      assert.equal(await page.isChecked('input[name=prompt][value=huatuo]'), true, "HuaTuo's prompt is not the default, as it is huatuo-train generate's");
      assert.equal(await page.textContent('#chat-template-name'), 'tiny-chat/tokenizer_config.json');
      assert.deepEqual(await ask(page, 'huatuo'), { base: nodeHuaTuo, adapted: null }, "HuaTuo's prompt does not answer as before");
      const chat = await ask(page, 'chat');
      assert.deepEqual(chat, { base: nodeChat, adapted: null }, "the chat template's answer is not what huatuo-train generate --template chat computes");
      assert.notDeepEqual(nodeChat.tokens, nodeHuaTuo.tokens.slice(0, 3), 'the template does not change the answer');

      // An adapter on the base's vocabulary: the base folder's template for both panes.
      const strong = join(work, 'strong-adapter');
      const strongBase = await loadBaseModel(folder, undefined, { dtype });
      await writeStrongAdapter(strongBase, strong);
      strongBase.model.dispose();
      const withStrong = await loadBaseModel(folder, undefined, { dtype });
      assert.equal(await loadAdapterWithTokenizer(withStrong, strong), null);
      const nodeStrong = await nodeAnswer(withStrong, chatTemplate);
      withStrong.model.dispose();
      await page.setInputFiles('#adapter-folder', strong);
      await page.waitForFunction(() => /loaded from strong-adapter$/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.notDeepEqual(nodeStrong.tokens, nodeChat.tokens, 'the adapter does not change the answer');
      assert.deepEqual(await ask(page, 'chat'), { base: nodeChat, adapted: nodeStrong }, "the adapted answer with the base's template is not Node's");

      // An adapter bringing its own vocabulary and tokenizer (Qwen2's, whose tokenizer_config.json holds ChatML) answers with its
      // folder's template, as huatuo-train generate --template chat --adapter does; the base pane keeps the base's.
      const resized = join(work, 'chatml-adapter');
      const resizedBase = await loadBaseModel(folder, undefined, { dtype });
      await writeSavedModulesAdapter(resizedBase, resized, QWEN2_PIECES);
      resizedBase.model.dispose();
      writeFileSync(join(resized, 'tokenizer.json'), JSON.stringify(qwen2TokenizerJson()));
      writeFileSync(join(resized, 'tokenizer_config.json'), JSON.stringify(QWEN2_TOKENIZER_CONFIG));
      const withResized = await loadBaseModel(folder, undefined, { dtype });
      assert.equal(await loadAdapterWithTokenizer(withResized, resized), resized);
      const chatml = loadChatTemplate(resized);
      const nodeResized = await nodeAnswer(withResized, chatml);
      assert.deepEqual(nodeResized.promptTokens, withResized.tokenizer.encode('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n头痛怎么办？<|im_end|>\n<|im_start|>assistant\n', { addBos: false, addEos: false }));
      withResized.model.dispose();
      await page.setInputFiles('#adapter-folder', resized);
      await page.waitForFunction(() => /loaded from chatml-adapter; on its own vocabulary/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.equal(await page.textContent('#chat-template-name'), 'chatml-adapter/tokenizer_config.json');
      assert.deepEqual(await ask(page, 'chat'), { base: nodeChat, adapted: nodeResized }, "the adapted answer is not Node's with the adapter folder's ChatML template");

      // Such an adapter whose folder has no template: the base's does not stand in for it.
      const bare = join(work, 'adapter-without-template');
      cpSync(resized, bare, { recursive: true });
      const { chat_template: _, ...withoutTemplate } = QWEN2_TOKENIZER_CONFIG;
      writeFileSync(join(bare, 'tokenizer_config.json'), JSON.stringify(withoutTemplate));
      await page.setInputFiles('#adapter-folder', bare);
      await page.waitForFunction(() => /loaded from adapter-without-template; on its own vocabulary/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.deepEqual(await ask(page, 'chat'), { base: nodeChat, adapted: null });
      assert.match(
        (await page.textContent('#answer-adapted.bad')) ?? '',
        /^adapter-without-template brings the adapter's own vocabulary and tokenizer, whose chat template is the one that applies .*but has no chat_template\.jinja and no "chat_template" in a tokenizer_config\.json; .*or choose HuaTuo's prompt$/,
      );
      assert.deepEqual((await ask(page, 'huatuo')).base, nodeHuaTuo);

      // A chat_template.jinja (over tokenizer_config.json's) that recurses without end stops at the sandbox's bound, named.
      const broken = join(work, 'broken-chat');
      cpSync(folder, broken, { recursive: true });
      writeFileSync(join(broken, 'chat_template.jinja'), '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}');
      await page.setInputFiles('#model-folder', broken);
      await page.waitForFunction(() => /^broken-chat: /.test(document.getElementById('model-status')!.textContent ?? ''), null, { timeout: 60_000 });
      assert.equal(await page.textContent('#chat-template-name'), 'broken-chat/chat_template.jinja');
      await page.check('input[name=prompt][value=chat]');
      await page.click('#ask');
      await page.waitForFunction(() => document.getElementById('answer-base')!.classList.contains('bad') && document.body.dataset.busy === '', null, { timeout: 60_000 });
      const refusal = (await page.textContent('#answer-base')) ?? '';
      assert.match(refusal, /^broken-chat\/chat_template\.jinja: the chat template nested deeper than 1000 levels \(a macro that calls itself without end\) rendering 1 messages, .*use the model's original chat template, or choose HuaTuo's prompt$/);
      assert.doesNotMatch(refusal, /--template/, 'the page names its choice, not the command line flag');

      // A template that refuses the question through raise_exception: its message, naming the file.
      const refusing = join(work, 'refusing-chat');
      cpSync(folder, refusing, { recursive: true });
      writeFileSync(join(refusing, 'chat_template.jinja'), "{% if messages[0]['role'] != 'system' %}{{ raise_exception('Conversations must begin with a system message') }}{% endif %}");
      await page.setInputFiles('#model-folder', refusing);
      await page.waitForFunction(() => /^refusing-chat: /.test(document.getElementById('model-status')!.textContent ?? ''), null, { timeout: 60_000 });
      await page.click('#ask');
      await page.waitForFunction(() => document.getElementById('answer-base')!.classList.contains('bad') && document.body.dataset.busy === '', null, { timeout: 60_000 });
      assert.equal(await page.textContent('#answer-base'), 'refusing-chat/chat_template.jinja: the chat template refuses this question: Conversations must begin with a system message');
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await app.close();
    }
  },
);
