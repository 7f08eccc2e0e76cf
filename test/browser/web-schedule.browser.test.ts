// The web app's schedule and loss normalization in headless Chromium: the form's fields come from the
// trainer's options, a cosine schedule with warm-up steps and per-token loss normalization set there
// are what the run trains with (its logged learning rates and its checkpoint), and a bad value is
// refused by the trainer's own check, naming the field. A run stored before these fields existed
// resumes with the recipe's values.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { DEFAULT_CONFIG, type TrainConfig } from '@huatuo/sft';
import { buildWeb, serveWeb } from '../../apps/web/scripts/serve.js';
import { knobsOf, recipe } from '../../apps/web/src/run.js';

const CHROMIUM = '/usr/bin/chromium';

/** A file of the page's run, read from its IndexedDB store. */
async function storedText(page: Page, path: string): Promise<string> {
  return page.evaluate(
    (path) =>
      new Promise<string>((resolve, reject) => {
        const open = indexedDB.open('huatuo-webgpu');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const get = open.result.transaction('files').objectStore('files').get(path);
          get.onsuccess = () => resolve(typeof get.result === 'string' ? get.result : new TextDecoder().decode(get.result));
          get.onerror = () => reject(get.error);
        };
      }),
    path,
  );
}

/** transformers' get_cosine_schedule_with_warmup factor at 0-based step `k`. */
function cosineFactor(k: number, warmup: number, total: number, numCycles: number): number {
  if (k < warmup) return k / Math.max(1, warmup);
  const progress = (k - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

test(
  'a cosine schedule with 2 warm-up steps and per-token loss normalization set in the form are what the page trains with',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing; install Debian's chromium to run the browser test`, timeout: 420_000 },
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'huatuo-web-schedule-'));
    const site = join(work, 'site');
    await buildWeb({ outDir: site });
    const server = await serveWeb({ port: 0, root: site });
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-quic'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      await page.waitForSelector('#device.ok', { timeout: 60_000 });

      // The fields start at the recipe's values; the schedule's choices are the trainer's.
      assert.equal(await page.inputValue('#knobs select[name=lrSchedulerType]'), 'linear');
      assert.equal(await page.inputValue('#knobs select[name=lossNormalization]'), 'micro-batch');
      assert.equal(await page.inputValue('#knobs select[name=epochRemainder]'), 'step');
      assert.equal(await page.inputValue('#knobs input[name=warmupSteps]'), '0');
      assert.equal(await page.inputValue('#knobs input[name=warmupRatio]'), '0.1');
      assert.deepEqual(
        await page.$$eval('#knobs select[name=lrSchedulerType] option', (options) => options.map((o) => (o as HTMLOptionElement).value)),
        ['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup'],
      );
      assert.equal(await page.isVisible('#knobs input[name="lrSchedulerKwargs.num_cycles"]'), false, 'linear takes no num_cycles');

      await page.click('#demo-model');
      await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
      // 14 short records: 12 to train on in batches of 2, one epoch, six steps.
      const records = Array.from({ length: 14 }, (_, i) => JSON.stringify({ instruction: `问题${i}：头痛怎么办？`, input: '', output: `回答${i}：多休息。` })).join('\n');
      await page.setInputFiles('#data-file', { name: 'fourteen.jsonl', mimeType: 'application/json', buffer: Buffer.from(records) });
      await page.waitForSelector('#data-status.ok');
      for (const [name, value] of [['numEpochs', '1'], ['learningRate', '0.01'], ['cutoffLen', '96'], ['batchSize', '2'], ['valSetSize', '2'], ['evalSteps', '3']] as const) {
        await page.fill(`#knobs input[name=${name}]`, value);
      }
      await page.selectOption('#knobs select[name=lrSchedulerType]', 'cosine');
      assert.equal(await page.isVisible('#knobs input[name="lrSchedulerKwargs.num_cycles"]'), true, 'cosine takes num_cycles');
      assert.equal(await page.isVisible('#knobs input[name="lrSchedulerKwargs.lr_end"]'), false, 'cosine takes no lr_end');
      assert.equal(await page.getAttribute('#knobs input[name="lrSchedulerKwargs.num_cycles"]', 'placeholder'), '0.5');

      // A bad value is refused by the trainer's check, naming the field and its flag.
      await page.fill('#knobs input[name=warmupSteps]', '1.5');
      await page.dispatchEvent('#knobs', 'change');
      await page.waitForFunction(() => /Warm-up steps: --warmup-steps: expected an integer, got "1\.5"/.test(document.getElementById('plan')!.textContent ?? ''));
      assert.equal(await page.isDisabled('#train'), true);

      await page.fill('#knobs input[name=warmupSteps]', '2');
      await page.selectOption('#knobs select[name=lossNormalization]', 'tokens');
      await page.dispatchEvent('#knobs', 'change');
      await page.waitForFunction(() => !(document.getElementById('train') as HTMLButtonElement).disabled, null, { timeout: 10_000 }).catch(async (e) => {
        throw new Error(`${String(e)}; the plan says: ${await page.textContent('#plan')}`);
      });
      const plan = (await page.textContent('#plan')) ?? '';
      assert.match(plan, /6 optimizer steps of 2 sequences .*warm-up 2/);
      assert.match(plan, /Schedule cosine \(num_cycles 0\.5\) from 0\.01; loss averaged per answer token of the step/);
      await page.click('#train');
      await page.waitForFunction(() => /^Done: 6 steps/.test(document.getElementById('train-stats')!.textContent ?? ''), null, { timeout: 360_000 });

      const rows = (await storedText(page, 'runs/current/metrics.jsonl')).trim().split('\n').map((l) => JSON.parse(l) as { step: number; lr?: number });
      const rates = rows.filter((r) => r.lr !== undefined).map((r) => [r.step, r.lr!]);
      assert.deepEqual(rates.map(([step]) => step), [1, 2, 3, 4, 5, 6]);
      for (const [step, lr] of rates) {
        const expected = 0.01 * cosineFactor(step! - 1, 2, 6, 0.5);
        assert.ok(Math.abs(lr! - expected) <= 1e-15, `step ${step}: learning rate ${lr}, transformers' cosine with 2 warm-up steps gives ${expected}`);
      }
      const state = JSON.parse(await storedText(page, 'runs/current/checkpoint-6/trainer_state.json')) as { lossNormalization?: string; lrSchedule?: unknown };
      assert.equal(state.lossNormalization, 'tokens');
      assert.deepEqual(state.lrSchedule, { type: 'cosine', warmupSteps: 2, kwargs: { num_cycles: 0.5 } });
      assert.deepEqual(errors, [], 'page errors');
    } finally {
      await browser.close();
      await server.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
);

test("a run stored before the schedule's fields existed comes back with the recipe's schedule and loss normalization, and with its leftover micro-batches dropped as it trained", () => {
  const { lossNormalization: _n, warmupSteps: _s, lrSchedulerType: _t, lrSchedulerKwargs: _k, epochRemainder: _r, ...older } = { ...DEFAULT_CONFIG, learningRate: 0.01, evalSteps: 3 };
  const knobs = knobsOf(older as TrainConfig);
  assert.equal(knobs.lossNormalization, 'micro-batch');
  assert.equal(knobs.epochRemainder, 'drop');
  assert.equal(recipe(knobs).epochRemainder, 'drop');
  assert.equal(knobsOf({ ...DEFAULT_CONFIG, epochRemainder: 'carry' }).epochRemainder, 'carry');
  assert.equal(knobs.lrSchedulerType, 'linear');
  assert.equal(knobs.warmupSteps, 0);
  assert.deepEqual(knobs.lrSchedulerKwargs, {});
  const config = recipe(knobs);
  assert.equal(config.learningRate, 0.01);
  assert.equal(config.saveSteps, 3);
  assert.throws(() => recipe({ ...knobs, lrSchedulerKwargs: { lr_end: 0 } }), /--lr-scheduler-kwargs: --lr-scheduler-type linear takes no arguments, got "lr_end"/);
});
