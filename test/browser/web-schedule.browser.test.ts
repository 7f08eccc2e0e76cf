// The web app's schedule and loss normalization in headless Chromium: the form's fields come from the
// trainer's options, a cosine schedule with warm-up steps and per-token loss normalization set there
// are what the run trains with (its logged learning rates and its checkpoint), and a bad value is
// refused by the trainer's own check, naming the field. warmup_stable_decay's curves are chosen from
// the trainer's, and its rates are transformers'. A run stored before these fields existed resumes
// with the recipe's values.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { DEFAULT_CONFIG, LR_SCHEDULER_TYPES, WSD_CURVES, type TrainConfig } from '@huatuo/sft';
import { knobsOf, recipe } from '../../apps/web/src/run.js';
import { openApp, serveApp, SKIP_WITHOUT_CHROMIUM } from './web-page.js';

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

/** Builds and serves the page in headless Chromium and runs `body` on it once it has a device; page errors fail it. */
async function withDemoPage(body: (page: Page) => Promise<void>): Promise<void> {
  const app = await serveApp('huatuo-web-schedule-');
  try {
    const { page, errors } = await openApp(app.browser, app.url);
    await body(page);
    assert.deepEqual(errors, [], 'page errors');
  } finally {
    await app.close();
  }
}

/** Chooses the demo model and 14 short records: 12 to train on in batches of 2, one epoch, six steps. */
async function chooseDemoModelAndData(page: Page): Promise<void> {
  await page.click('#demo-model');
  await page.waitForSelector('#model-status.ok', { timeout: 60_000 });
  const records = Array.from({ length: 14 }, (_, i) => JSON.stringify({ instruction: `问题${i}：头痛怎么办？`, input: '', output: `回答${i}：多休息。` })).join('\n');
  await page.setInputFiles('#data-file', { name: 'fourteen.jsonl', mimeType: 'application/json', buffer: Buffer.from(records) });
  await page.waitForSelector('#data-status.ok');
}

/** Sets the form's numeric knobs of a six-step run, then waits until the plan lets it train. */
async function fillSixSteps(page: Page, knobs: ReadonlyArray<readonly [string, string]>): Promise<void> {
  for (const [name, value] of [['numEpochs', '1'], ['learningRate', '0.01'], ['cutoffLen', '96'], ['batchSize', '2'], ['valSetSize', '2'], ['evalSteps', '3'], ...knobs]) {
    await page.fill(`#knobs input[name="${name}"]`, value!);
  }
  await page.dispatchEvent('#knobs', 'change');
  await page.waitForFunction(() => !(document.getElementById('train') as HTMLButtonElement).disabled, null, { timeout: 10_000 }).catch(async (e) => {
    throw new Error(`${String(e)}; the plan says: ${await page.textContent('#plan')}`);
  });
}

/** Trains the planned six steps and returns the logged learning rate of each step. */
async function trainSixSteps(page: Page): Promise<Array<[number, number]>> {
  await page.click('#train');
  await page.waitForFunction(() => /^Done: 6 steps/.test(document.getElementById('train-stats')!.textContent ?? ''), null, { timeout: 360_000 });
  const rows = (await storedText(page, 'runs/current/metrics.jsonl')).trim().split('\n').map((l) => JSON.parse(l) as { step: number; lr?: number });
  const rates = rows.filter((r) => r.lr !== undefined).map((r): [number, number] => [r.step, r.lr!]);
  assert.deepEqual(rates.map(([step]) => step), [1, 2, 3, 4, 5, 6]);
  return rates;
}

/** transformers' get_cosine_schedule_with_warmup factor at 0-based step `k`. */
function cosineFactor(k: number, warmup: number, total: number, numCycles: number): number {
  if (k < warmup) return k / Math.max(1, warmup);
  const progress = (k - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

/** transformers' get_wsd_schedule factor at 0-based step `k` (_get_wsd_scheduler_lambda). */
function wsdFactor(k: number, o: { warmup: number; stable: number; decay: number; warmupType: string; decayType: string; minLrRatio: number; numCycles: number }): number {
  const scaled = (factor: number) => Math.max(0, factor * (1 - o.minLrRatio) + o.minLrRatio);
  if (k < o.warmup) {
    const progress = k / Math.max(1, o.warmup);
    if (o.warmupType === 'linear') return scaled(progress);
    if (o.warmupType === 'cosine') return scaled(0.5 * (1 - Math.cos(Math.PI * progress)));
    return scaled(1 - Math.sqrt(1 - progress));
  }
  if (k < o.warmup + o.stable) return 1;
  if (k < o.warmup + o.stable + o.decay) {
    const progress = (k - o.warmup - o.stable) / Math.max(1, o.decay);
    if (o.decayType === 'linear') return scaled(1 - progress);
    if (o.decayType === 'cosine') return scaled(0.5 * (1 + Math.cos(Math.PI * o.numCycles * 2 * progress)));
    return scaled(1 - Math.sqrt(progress));
  }
  return o.minLrRatio;
}

test(
  'a cosine schedule with 2 warm-up steps and per-token loss normalization set in the form are what the page trains with',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 420_000 },
  () =>
    withDemoPage(async (page) => {
      // The fields start at the recipe's values; the schedule's choices are the trainer's.
      assert.equal(await page.inputValue('#knobs select[name=lrSchedulerType]'), 'linear');
      assert.equal(await page.inputValue('#knobs select[name=lossNormalization]'), 'micro-batch');
      assert.equal(await page.inputValue('#knobs select[name=epochRemainder]'), 'step');
      assert.equal(await page.inputValue('#knobs input[name=warmupSteps]'), '0');
      assert.equal(await page.inputValue('#knobs input[name=warmupRatio]'), '0.1');
      assert.deepEqual(
        await page.$$eval('#knobs select[name=lrSchedulerType] option', (options) => options.map((o) => (o as HTMLOptionElement).value)),
        [...LR_SCHEDULER_TYPES],
      );
      assert.equal(await page.isVisible('#knobs input[name="lrSchedulerKwargs.num_cycles"]'), false, 'linear takes no num_cycles');

      await chooseDemoModelAndData(page);
      await page.selectOption('#knobs select[name=lrSchedulerType]', 'cosine');
      assert.equal(await page.isVisible('#knobs input[name="lrSchedulerKwargs.num_cycles"]'), true, 'cosine takes num_cycles');
      assert.equal(await page.isVisible('#knobs input[name="lrSchedulerKwargs.lr_end"]'), false, 'cosine takes no lr_end');
      assert.equal(await page.getAttribute('#knobs input[name="lrSchedulerKwargs.num_cycles"]', 'placeholder'), '0.5');

      // A bad value is refused by the trainer's check, naming the field and its flag.
      await page.fill('#knobs input[name=warmupSteps]', '1.5');
      await page.dispatchEvent('#knobs', 'change');
      await page.waitForFunction(() => /Warm-up steps: --warmup-steps \(warmupSteps\): expected an integer, got "1\.5"/.test(document.getElementById('plan')!.textContent ?? ''));
      assert.equal(await page.isDisabled('#train'), true);

      await page.selectOption('#knobs select[name=lossNormalization]', 'tokens');
      await fillSixSteps(page, [['warmupSteps', '2']]);
      const plan = (await page.textContent('#plan')) ?? '';
      assert.match(plan, /6 optimizer steps of 2 sequences .*warm-up 2/);
      assert.match(plan, /Schedule cosine \(num_cycles 0\.5\) from 0\.01; loss averaged per answer token of the step/);

      for (const [step, lr] of await trainSixSteps(page)) {
        const expected = 0.01 * cosineFactor(step - 1, 2, 6, 0.5);
        assert.ok(Math.abs(lr - expected) <= 1e-15, `step ${step}: learning rate ${lr}, transformers' cosine with 2 warm-up steps gives ${expected}`);
      }
      const state = JSON.parse(await storedText(page, 'runs/current/checkpoint-6/trainer_state.json')) as { lossNormalization?: string; lrSchedule?: unknown };
      assert.equal(state.lossNormalization, 'tokens');
      assert.deepEqual(state.lrSchedule, { type: 'cosine', warmupSteps: 2, kwargs: { num_cycles: 0.5 } });
    }),
);

test(
  "warmup_stable_decay with its curves chosen in the form trains with transformers' rates, and arguments without a default show none",
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 420_000 },
  () =>
    withDemoPage(async (page) => {
      await chooseDemoModelAndData(page);

      // cosine_with_min_lr's min_lr and min_lr_rate have no default (transformers' None): their fields say none.
      await page.selectOption('#knobs select[name=lrSchedulerType]', 'cosine_with_min_lr');
      const placeholders = () =>
        page.$$eval('#knobs label[data-kwarg]:not([hidden]) input', (inputs) => Object.fromEntries(inputs.map((i) => [(i as HTMLInputElement).name, (i as HTMLInputElement).placeholder])));
      assert.deepEqual(await placeholders(), { 'lrSchedulerKwargs.num_cycles': '0.5', 'lrSchedulerKwargs.min_lr': '', 'lrSchedulerKwargs.min_lr_rate': '' });
      await page.dispatchEvent('#knobs', 'change');
      await page.waitForFunction(() => /--lr-scheduler-kwargs \(lrSchedulerKwargs\): --lr-scheduler-type cosine_with_min_lr needs min_lr/.test(document.getElementById('plan')!.textContent ?? ''));

      // warmup_stable_decay's warm-up and decay curves are a choice of the trainer's, starting at transformers' defaults.
      await page.selectOption('#knobs select[name=lrSchedulerType]', 'warmup_stable_decay');
      assert.deepEqual(await placeholders(), {
        'lrSchedulerKwargs.num_cycles': '0.5',
        'lrSchedulerKwargs.num_decay_steps': '',
        'lrSchedulerKwargs.num_stable_steps': '',
        'lrSchedulerKwargs.min_lr_ratio': '0',
      });
      for (const curve of ['warmup_type', 'decay_type']) {
        const select = `#knobs select[name="lrSchedulerKwargs.${curve}"]`;
        assert.equal(await page.isVisible(select), true, `warmup_stable_decay takes ${curve}`);
        assert.deepEqual(await page.$$eval(`${select} option`, (options) => options.map((o) => (o as HTMLOptionElement).value)), [...WSD_CURVES]);
      }
      assert.equal(await page.inputValue('#knobs select[name="lrSchedulerKwargs.warmup_type"]'), 'linear');
      assert.equal(await page.inputValue('#knobs select[name="lrSchedulerKwargs.decay_type"]'), 'cosine');
      assert.ok(!/null/.test((await page.textContent('#knobs')) ?? ''), 'the form shows no "null"');

      await page.selectOption('#knobs select[name="lrSchedulerKwargs.warmup_type"]', 'cosine');
      await page.selectOption('#knobs select[name="lrSchedulerKwargs.decay_type"]', '1-sqrt');
      // 2 warm-up steps, 1 stable step (the steps left), 3 decay steps to a tenth of the peak.
      await fillSixSteps(page, [['warmupSteps', '2'], ['lrSchedulerKwargs.num_decay_steps', '3'], ['lrSchedulerKwargs.min_lr_ratio', '0.1']]);
      assert.match((await page.textContent('#plan')) ?? '', /Schedule warmup_stable_decay \(warmup_type cosine, decay_type 1-sqrt, min_lr_ratio 0\.1, num_cycles 0\.5, num_decay_steps 3\) from 0\.01/);

      const wsd = { warmup: 2, stable: 1, decay: 3, warmupType: 'cosine', decayType: '1-sqrt', minLrRatio: 0.1, numCycles: 0.5 };
      for (const [step, lr] of await trainSixSteps(page)) {
        const expected = 0.01 * wsdFactor(step - 1, wsd);
        assert.ok(Math.abs(lr - expected) <= 1e-15, `step ${step}: learning rate ${lr}, transformers' warmup_stable_decay (cosine warm-up, 1-sqrt decay) gives ${expected}`);
      }
      const state = JSON.parse(await storedText(page, 'runs/current/checkpoint-6/trainer_state.json')) as { lrSchedule?: unknown };
      assert.deepEqual(state.lrSchedule, {
        type: 'warmup_stable_decay',
        warmupSteps: 2,
        kwargs: { num_decay_steps: 3, warmup_type: 'cosine', decay_type: '1-sqrt', min_lr_ratio: 0.1, num_cycles: 0.5 },
      });
    }),
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
  assert.throws(() => recipe({ ...knobs, lrSchedulerKwargs: { lr_end: 0 } }), /--lr-scheduler-kwargs \(lrSchedulerKwargs\): --lr-scheduler-type linear takes no arguments, got "lr_end"/);
});
