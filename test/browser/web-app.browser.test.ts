// The web app in headless Chromium (SwiftShader's WebGPU): demo model and data, a few training
// steps whose loss falls, a reload that resumes from the checkpoint in IndexedDB, streamed chat,
// the downloaded adapter equal to Node's saveAdapter bytes, and a Node-written PEFT adapter that
// changes the answer to what Node computes; DoRA ticked gives a PEFT DoRA adapter. Screenshots go to
// apps/web/screenshots (ignored by git).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { buildWeb, serveWeb } from '../../apps/web/scripts/serve.js';
import { bytesSource, SafetensorsFile } from '@huatuo/llama';
import { greedyAnswer, nodeDemoModel, resaveAdapter, writeStrongAdapter, writeTinyHfFolder } from './web-app-node.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = new URL('../../apps/web/screenshots/', import.meta.url).pathname;
const QUESTION = '头痛怎么办？';
const MAX_TOKENS = 8;

async function shoot(page: Page, name: string): Promise<void> {
  for (const [w, h] of [[1280, 800], [390, 844]] as const) {
    await page.setViewportSize({ width: w, height: h });
    await page.screenshot({ path: join(SHOTS, `${name}-${w}x${h}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

/** metrics.jsonl of the page's run, read from its IndexedDB store. */
async function storedMetrics(page: Page): Promise<{ step: number; loss?: number; valLoss?: number }[]> {
  const text = await page.evaluate(
    () =>
      new Promise<string>((resolve, reject) => {
        const open = indexedDB.open('huatuo-webgpu');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const get = open.result.transaction('files').objectStore('files').get('runs/current/metrics.jsonl');
          get.onsuccess = () => resolve(typeof get.result === 'string' ? get.result : new TextDecoder().decode(get.result));
          get.onerror = () => reject(get.error);
        };
      }),
  );
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

async function stepShown(page: Page): Promise<number> {
  return Number(/step (\d+)\//.exec((await page.textContent('#train-stats')) ?? '')?.[1] ?? 0);
}

/** Asks the question; returns the answers and how many distinct partial texts the base pane showed. */
async function ask(page: Page): Promise<{ base: string; adapted: string; partials: number }> {
  await page.fill('#question', QUESTION);
  await page.fill('#max-tokens', String(MAX_TOKENS));
  // Every text the base pane shows before its answer is final, seen by the page itself (polling from
  // here would miss the texts of tokens that stream faster than a round trip to the browser).
  await page.evaluate(() => {
    const pane = document.getElementById('answer-base')!;
    const seen = new Set<string>();
    (window as unknown as { basePartials: Set<string> }).basePartials = seen;
    new MutationObserver(() => {
      if (pane.dataset.answer === undefined) seen.add(pane.textContent ?? '');
    }).observe(pane, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#ask');
  await page.waitForFunction(() => document.getElementById('answer-adapted')!.dataset.answer !== undefined, null, { timeout: 120_000 });
  const partials = await page.evaluate(() => (window as unknown as { basePartials: Set<string> }).basePartials.size);
  return { base: (await page.getAttribute('#answer-base', 'data-answer'))!, adapted: (await page.getAttribute('#answer-adapted', 'data-answer'))!, partials };
}

test(
  'the web app trains the demo model, resumes after a reload, chats, and exchanges adapters byte for byte with Node',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing; install Debian's chromium to run the browser test`, timeout: 600_000 },
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'huatuo-web-'));
    const site = join(work, 'site');
    mkdirSync(SHOTS, { recursive: true });
    await buildWeb({ outDir: site });
    const server = await serveWeb({ port: 0, root: site });
    const context = await chromium.launchPersistentContext(join(work, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      acceptDownloads: true,
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    const foreign: string[] = [];
    const errors: string[] = [];
    try {
      const page = await context.newPage();
      page.on('request', (r) => void (r.url().startsWith(server.url) || r.url().startsWith('blob:') || r.url().startsWith('data:') || foreign.push(r.url())));
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      await page.waitForSelector('#device.ok', { timeout: 60_000 });
      await shoot(page, '1-idle');

      // Demo model and data, a short run: batch 8, evaluation and a checkpoint every 2 steps.
      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      // A bad data file is refused naming its lines; a step that cannot fit is refused with what to change.
      const bad = '{"instruction": "q", "input": "", "output": "a"}\n{"instruction": 3, "input": "", "output": "a"}\nnot json\n';
      await page.setInputFiles('#data-file', { name: 'bad.jsonl', mimeType: 'application/json', buffer: Buffer.from(bad) });
      await page.waitForSelector('#data-errors:not([hidden])');
      assert.match((await page.textContent('#data-errors')) ?? '', /line 2.*instruction.*line 3/s);
      await page.click('#demo-data');
      await page.waitForSelector('#data-status.ok');
      await page.fill('#knobs input[name=cutoffLen]', '65536');
      await page.fill('#knobs input[name=gpuMemory]', '0.5');
      await page.dispatchEvent('#knobs', 'change');
      await page.waitForSelector('#plan.bad');
      assert.match((await page.textContent('#plan')) ?? '', /Does not fit.*Lower the cutoff.*raise the GPU memory/s);
      assert.equal(await page.isDisabled('#train'), true);
      await page.fill('#knobs input[name=gpuMemory]', '4');
      for (const [name, value] of [['numEpochs', '1'], ['learningRate', '0.01'], ['cutoffLen', '96'], ['batchSize', '8'], ['valSetSize', '8'], ['evalSteps', '2']] as const) {
        await page.fill(`#knobs input[name=${name}]`, value);
      }
      await page.dispatchEvent('#knobs', 'change');
      await page.waitForFunction(() => !(document.getElementById('train') as HTMLButtonElement).disabled);
      assert.match((await page.textContent('#plan')) ?? '', /Memory weights/);
      await page.click('#train');
      await page.waitForFunction(() => /step [4-9]\//.test(document.getElementById('train-stats')!.textContent ?? ''), null, { timeout: 300_000 });
      await shoot(page, '2-training');
      await page.click('#pause');
      await page.waitForFunction(() => /^Paused at step/.test(document.getElementById('train-stats')!.textContent ?? ''), null, { timeout: 120_000 });
      const before = await storedMetrics(page);
      const losses = before.filter((r) => r.loss !== undefined).map((r) => r.loss!);
      const vals = before.filter((r) => r.valLoss !== undefined).map((r) => r.valLoss!);
      assert.ok(losses.length >= 4 && vals.length >= 2, `metrics: ${JSON.stringify(before)}`);
      assert.ok(vals.at(-1)! < vals[0]!, `validation loss did not fall: ${vals.join(', ')}`);
      assert.ok(losses.at(-1)! < losses[0]!, `training loss did not fall: ${losses.join(', ')}`);
      const pausedAt = before.at(-1)!.step;

      // A reload finds the run in IndexedDB and continues from its checkpoint, not from step 0.
      await page.reload();
      await page.waitForSelector('#resume-banner:not([hidden])', { timeout: 60_000 });
      assert.match((await page.textContent('#resume-text')) ?? '', new RegExp(`step ${pausedAt} of`));
      await page.click('#resume-run');
      await page.waitForFunction((n) => new RegExp(`step (\\d+)/`).test(document.getElementById('train-stats')!.textContent ?? '') && Number(/step (\d+)\//.exec(document.getElementById('train-stats')!.textContent!)![1]) > n, pausedAt, { timeout: 300_000 });
      assert.equal(await stepShown(page), pausedAt + 1, 'the first step after the reload is the one after the checkpoint');
      await page.click('#stop');
      await page.waitForFunction(() => /^Stopped at step/.test(document.getElementById('train-stats')!.textContent ?? ''), null, { timeout: 120_000 });
      const after = await storedMetrics(page);
      assert.deepEqual(after.slice(0, before.length).map((r) => r.step), before.map((r) => r.step), 'the resumed run keeps the earlier history');
      assert.ok(after.at(-1)!.step > pausedAt);

      // Chat: tokens stream into the base pane before the answer is complete.
      const trained = await ask(page);
      assert.ok(trained.partials >= 3, `the base answer did not stream (${trained.partials} distinct partial texts)`);
      await shoot(page, '3-chat');

      // The downloaded adapter is what Node's saveAdapter writes for the same weights.
      const downloads: Record<string, Buffer> = {};
      for (const which of ['config', 'weights']) {
        const [d] = await Promise.all([page.waitForEvent('download'), page.click(`#download-${which}`)]);
        const path = join(work, d.suggestedFilename());
        await d.saveAs(path);
        downloads[d.suggestedFilename()] = readFileSync(path);
      }
      const base = await nodeDemoModel();
      const resaved = join(work, 'resaved');
      await resaveAdapter(base, downloads['adapter_config.json']!.toString('utf8'), downloads['adapter_model.safetensors']!, resaved);
      assert.ok(readFileSync(join(resaved, 'adapter_model.safetensors')).equals(downloads['adapter_model.safetensors']!), 'adapter_model.safetensors differs from saveAdapter');
      assert.ok(readFileSync(join(resaved, 'adapter_config.json')).equals(downloads['adapter_config.json']!), 'adapter_config.json differs from saveAdapter');

      // A PEFT folder written by Node changes the adapted answer to the one Node computes with it.
      const strong = join(work, 'strong-adapter');
      await writeStrongAdapter(base, strong);
      const want = await greedyAnswer(base, QUESTION, MAX_TOKENS);
      await page.setInputFiles('#adapter-folder', strong);
      await page.waitForFunction(() => /loaded from|adapter_/.test(document.getElementById('adapter-status')!.textContent ?? ''));
      assert.match((await page.textContent('#adapter-status')) ?? '', /^LoRA r 4, alpha 64 on q_proj, v_proj: .*loaded from strong-adapter/);
      const loaded = await ask(page);
      assert.notEqual(loaded.adapted, trained.adapted, 'the loaded adapter did not change the answer');
      assert.equal(loaded.adapted, want, 'the answer with the loaded adapter is not what Node computes');
      assert.equal(loaded.base, trained.base, 'the base answer changed');
      base.model.dispose();

      // A Hugging Face folder picked from disk: sharded safetensors read through Blob slices.
      const folder = join(work, 'tiny-llama-hf');
      await writeTinyHfFolder(folder);
      await page.setInputFiles('#model-folder', folder);
      await page.waitForFunction(() => /^tiny-llama-hf: |safetensors|config/.test(document.getElementById('model-status')!.textContent ?? ''), null, { timeout: 60_000 });
      assert.match((await page.textContent('#model-status')) ?? '', /^tiny-llama-hf: 1 layer, hidden 32, vocabulary 32000/);

      assert.deepEqual(foreign, [], 'requests left the serving host');
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await context.close();
      await server.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
);

test(
  'with DoRA ticked the page trains a DoRA adapter and downloads it as PEFT writes one: use_dora and a lora_magnitude_vector per adapted module',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing`, timeout: 300_000 },
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'huatuo-web-'));
    const site = join(work, 'site');
    await buildWeb({ outDir: site });
    const server = await serveWeb({ port: 0, root: site });
    const context = await chromium.launchPersistentContext(join(work, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    const errors: string[] = [];
    try {
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      await page.waitForSelector('#device.ok', { timeout: 60_000 });
      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      // Ten short records: 8 to train on in batches of 4, one epoch, two steps.
      const records = Array.from({ length: 10 }, (_, i) => JSON.stringify({ instruction: `问题${i}：头痛怎么办？`, input: '', output: `回答${i}：多休息。` })).join('\n');
      await page.setInputFiles('#data-file', { name: 'ten.jsonl', mimeType: 'application/json', buffer: Buffer.from(records) });
      await page.waitForSelector('#data-status.ok');
      assert.equal(await page.isChecked('#knobs input[name=loraUseDora]'), false, 'DoRA is off by default');
      assert.equal(await page.isChecked('#knobs input[name=loraUseRslora]'), false, 'rsLoRA is off by default');
      for (const [name, value] of [['numEpochs', '1'], ['cutoffLen', '96'], ['batchSize', '4'], ['valSetSize', '2'], ['evalSteps', '2']] as const) {
        await page.fill(`#knobs input[name=${name}]`, value);
      }
      await page.check('#knobs input[name=loraUseDora]');
      await page.waitForFunction(() => !(document.getElementById('train') as HTMLButtonElement).disabled, null, { timeout: 10_000 }).catch(async (e) => {
        throw new Error(`${String(e)}; the plan says: ${await page.textContent('#plan')}`);
      });
      assert.match((await page.textContent('#plan')) ?? '', /LoRA r 8, alpha 16 \(scale 2\) on q_proj, v_proj, DoRA/);
      await page.click('#train');
      await page.waitForFunction(() => /^Done: 2 steps/.test(document.getElementById('train-stats')!.textContent ?? ''), null, { timeout: 240_000 });
      assert.match((await page.textContent('#adapter-status')) ?? '', /^LoRA r 8, alpha 16 on q_proj, v_proj \(DoRA\): /);

      const downloads: Record<string, Buffer> = {};
      for (const which of ['config', 'weights']) {
        const [d] = await Promise.all([page.waitForEvent('download'), page.click(`#download-${which}`)]);
        const path = join(work, d.suggestedFilename());
        await d.saveAs(path);
        downloads[d.suggestedFilename()] = readFileSync(path);
      }
      const config = JSON.parse(downloads['adapter_config.json']!.toString('utf8')) as Record<string, unknown>;
      assert.equal(config['use_dora'], true);
      assert.equal(config['use_rslora'] ?? false, false);
      const st = await SafetensorsFile.open(bytesSource('adapter_model.safetensors', downloads['adapter_model.safetensors']!));
      const magnitudes = st.tensors.filter((t) => t.name.endsWith('.lora_magnitude_vector'));
      const loraA = st.tensors.filter((t) => t.name.endsWith('.lora_A.weight'));
      assert.ok(loraA.length > 0);
      assert.deepEqual(magnitudes.map((t) => t.name).sort(), loraA.map((t) => t.name.replace(/lora_A\.weight$/, 'lora_magnitude_vector')).sort(), 'one magnitude per adapted module');
      // Node's saveAdapter writes the same bytes for the same weights.
      const base = await nodeDemoModel();
      const resaved = join(work, 'resaved');
      await resaveAdapter(base, downloads['adapter_config.json']!.toString('utf8'), downloads['adapter_model.safetensors']!, resaved);
      base.model.dispose();
      assert.ok(readFileSync(join(resaved, 'adapter_model.safetensors')).equals(downloads['adapter_model.safetensors']!), 'adapter_model.safetensors differs from saveAdapter');
      assert.ok(readFileSync(join(resaved, 'adapter_config.json')).equals(downloads['adapter_config.json']!), 'adapter_config.json differs from saveAdapter');
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await context.close();
      await server.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
);

test(
  'without WebGPU, and when the device is lost, the page says what happened and what to do',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing`, timeout: 180_000 },
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'huatuo-web-'));
    const site = join(work, 'site');
    await buildWeb({ outDir: site });
    const server = await serveWeb({ port: 0, root: site });
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu'] });
    try {
      const none = await browser.newPage();
      // Scripts go in as text: tsx's helpers (__name) do not exist in the page.
      await none.addInitScript({ content: "Object.defineProperty(Navigator.prototype, 'gpu', { get() { return undefined; } });" });
      await none.goto(server.url);
      await none.waitForSelector('#fatal:not([hidden])');
      assert.match((await none.textContent('#fatal')) ?? '', /No WebGPU.*Chrome or Edge 113\+/s);
      assert.equal(await none.isDisabled('#demo-model'), true);

      const lost = await browser.newPage();
      await lost.addInitScript({
        content:
          'const request = GPUAdapter.prototype.requestDevice;' +
          'GPUAdapter.prototype.requestDevice = async function (d) { const device = await request.call(this, d); globalThis.testDevice = device; return device; };',
      });
      await lost.goto(server.url);
      await lost.waitForSelector('#device.ok', { timeout: 60_000 });
      await lost.evaluate(() => (globalThis as { testDevice?: GPUDevice }).testDevice!.destroy());
      await lost.waitForSelector('#fatal:not([hidden])');
      assert.match((await lost.textContent('#fatal')) ?? '', /GPU device was lost.*Reload the page/s);
    } finally {
      await browser.close();
      await server.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
);
