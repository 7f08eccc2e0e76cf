import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { roundedPow } from '@huatuo/tensor';
import { CONFIG_OPTIONS, DEFAULT_CONFIG, DEFAULT_GENERATION, DEMO_OVERRIDES, learningRateAt, resolveConfig, resolvePrecision, trainingSchedule, ConfigError } from '@huatuo/sft';

test("the defaults are HuaTuo's recipe", () => {
  assert.deepEqual(
    { ...DEFAULT_CONFIG },
    {
      dataPath: null, template: 'med_template', baseModel: null, quantize: 'none', outputDir: './lora-llama-med',
      cutoffLen: 256, valSetSize: 500, splitSeed: 2023, trainOnInputs: false,
      loraR: 8, loraAlpha: 16, loraDropout: 0.05, loraTargetModules: ['q_proj', 'v_proj'], loraUseRslora: false, loraUseDora: false, loraModulesToSave: [], loraBias: 'none',
      batchSize: 128, microBatchSize: 'auto', gradientCheckpointing: false, gpuMemory: 0, padToMultipleOf: 8, padId: 0, paddingSide: 'left',
      numEpochs: 10, maxSteps: -1, learningRate: 3e-4, adamBeta1: 0.9, adamBeta2: 0.999, adamEpsilon: 1e-8, weightDecay: 0, maxGradNorm: 1, lossNormalization: 'micro-batch', epochRemainder: 'step',
      warmupRatio: 0.1, warmupSteps: 0, lrSchedulerType: 'linear', lrSchedulerKwargs: {}, loggingSteps: 8, evalSteps: 32, saveSteps: 32, saveTotalLimit: 5, loadBestModelAtEnd: true, seed: 42, precision: 'auto',
    },
  );
  assert.deepEqual({ ...DEFAULT_GENERATION }, { numBeams: 4, maxNewTokens: 256, doSample: false, temperature: 0.1, topP: 0.75, topK: 40 });
});

test('overrides parse from CLI strings, by flag or key, and leave the defaults untouched', () => {
  const c = resolveConfig({ '--micro-batch': '4', cutoffLen: '512', '--lora-target-modules': 'q_proj, k_proj,v_proj', trainOnInputs: 'true', '--data': 'x.json', seed: undefined });
  assert.equal(c.microBatchSize, 4);
  assert.equal(c.cutoffLen, 512);
  assert.deepEqual(c.loraTargetModules, ['q_proj', 'k_proj', 'v_proj']);
  assert.equal(resolveConfig({ '--lora-use-rslora': 'true' }).loraUseRslora, true);
  assert.equal(c.trainOnInputs, true);
  assert.equal(c.dataPath, 'x.json');
  assert.equal(c.seed, 42);
  assert.deepEqual(DEFAULT_CONFIG.loraTargetModules, ['q_proj', 'v_proj']);
});

test('--quantize takes none, int8 or nf4 and refuses anything else, naming the flag', () => {
  assert.equal(resolveConfig({ '--quantize': 'nf4' }).quantize, 'nf4');
  assert.equal(resolveConfig({ quantize: 'int8' }).quantize, 'int8');
  assert.throws(() => resolveConfig({ '--quantize': 'int4' }), /--quantize \(quantize\): expected one of none, int8, nf4, got "int4"/);
});

test('--loss-normalization takes micro-batch (the default, as HuaTuo trained) or tokens and refuses anything else, naming the flag', () => {
  assert.equal(resolveConfig({ '--loss-normalization': 'tokens' }).lossNormalization, 'tokens');
  assert.equal(resolveConfig({ lossNormalization: 'micro-batch' }).lossNormalization, 'micro-batch');
  assert.throws(() => resolveConfig({ '--loss-normalization': 'token' }), /--loss-normalization \(lossNormalization\): expected one of micro-batch, tokens, got "token"/);
});

test('--quantize int8 or nf4 turns gradient checkpointing on unless --gradient-checkpointing says otherwise (PEFT prepare_model_for_kbit_training)', () => {
  assert.equal(resolveConfig({ '--quantize': 'int8' }).gradientCheckpointing, true);
  assert.equal(resolveConfig({ quantize: 'nf4' }).gradientCheckpointing, true);
  assert.equal(resolveConfig({ '--quantize': 'int8', '--gradient-checkpointing': 'false' }).gradientCheckpointing, false);
  assert.equal(resolveConfig({ '--quantize': 'none' }).gradientCheckpointing, false);
  assert.equal(resolveConfig({}).gradientCheckpointing, false);
});

test('the demo overrides resolve to a valid config', () => {
  const c = resolveConfig(DEMO_OVERRIDES);
  assert.equal(c.saveSteps % c.evalSteps, 0);
});

const failsOn = (overrides: Record<string, unknown>, flag: string, pattern: RegExp) =>
  assert.throws(() => resolveConfig(overrides), (e: unknown) => e instanceof ConfigError && e.flag === flag && e.message.startsWith(flag) && pattern.test(e.message), `${flag} ${pattern.source}`);

test('bad values are refused naming the flag, the value and what was expected', () => {
  failsOn({ cutoffLen: 'abc' }, '--cutoff-len', /expected an integer, got "abc"/);
  failsOn({ cutoffLen: '12.5' }, '--cutoff-len', /expected an integer/);
  failsOn({ '--lora-dropout': '1' }, '--lora-dropout', /expected a value >= 0 and < 1, got "1"/);
  failsOn({ learningRate: '0' }, '--learning-rate', /> 0/);
  failsOn({ trainOnInputs: 'maybe' }, '--train-on-inputs', /true or false/);
  failsOn({ '--lora-use-rslora': 'sqrt' }, '--lora-use-rslora', /expected true or false, got "sqrt"/);
  failsOn({ '--lora-target-modules': 'q_proj,attn' }, '--lora-target-modules', /unknown module "attn"/);
  failsOn({ '--micro-batch': '3' }, '--micro-batch', /must divide --batch-size 128/);
  failsOn({ '--micro-batch': '256' }, '--micro-batch', /must divide/);
  failsOn({ saveSteps: '40' }, '--save-steps', /multiple of --eval-steps 32/);
  failsOn({ '--learning-rat': '1' }, '--learning-rat', /unknown option/);
  failsOn({ numBeams: '2' }, '--num-beams', /unknown option/);
});

test("--load-best-model-at-end needs --save-steps a round multiple of --eval-steps where there is a validation set, as TrainingArguments' __post_init__ requires, naming the flags", () => {
  failsOn({ '--save-steps': '40' }, '--save-steps', /^--save-steps \(saveSteps\): 40 must be a round multiple of --eval-steps 32 with --load-best-model-at-end .*; or give --load-best-model-at-end false$/);
  failsOn({ '--load-best-model-at-end': 'maybe' }, '--load-best-model-at-end', /expected true or false, got "maybe"/);
  assert.equal(resolveConfig({ '--save-steps': '64' }).saveSteps, 64);
  assert.equal(resolveConfig({ '--save-steps': '40', '--load-best-model-at-end': 'false' }).loadBestModelAtEnd, false);
  // HuaTuo's finetune.py loads the best model only with a validation set (load_best_model_at_end=val_set_size > 0), and evaluates only then.
  assert.equal(resolveConfig({ '--save-steps': '40', '--val-set-size': '0' }).saveSteps, 40);
});

test('every option has a distinct flag and names a config key', () => {
  assert.equal(new Set(CONFIG_OPTIONS.map((o) => o.flag)).size, CONFIG_OPTIONS.length);
  for (const o of CONFIG_OPTIONS) assert.ok(o.key in DEFAULT_CONFIG, o.key);
});

test("--epoch-remainder's help says that carry logs the learning rate and the epoch as transformers 4.28 does", () => {
  const help = CONFIG_OPTIONS.find((o) => o.flag === '--epoch-remainder')!.help;
  assert.match(help, /carry: .*logs are 4\.28's: the learning rate after the scheduler stepped for the logged step .* the epoch rounded to 2 decimals, and no grad_norm; drop/);
});

test("the schedule counts steps as the Hugging Face Trainer does for HuaTuo's 8,158 training records", () => {
  // 8158 / 8 = 1019.75 -> 1020 micro-batches; 128 / 8 = 16 per step -> 63 full steps and one of the
  // remaining 12 per epoch (transformers 4.57: ceil(1020 / 16) = 64), as HuaTuo's 64 batches of 128 an epoch.
  const s = trainingSchedule(DEFAULT_CONFIG, 8158, 8);
  assert.deepEqual(s, { microBatchSize: 8, gradientAccumulationSteps: 16, microBatchesPerEpoch: 1020, stepsPerEpoch: 64, totalSteps: 640, warmupSteps: 64, lrSchedulerType: 'linear', lrSchedulerKwargs: {} });
  assert.deepEqual(trainingSchedule(DEFAULT_CONFIG, 8158, 128), { ...s, microBatchSize: 128, gradientAccumulationSteps: 1, microBatchesPerEpoch: 64 });
  assert.equal(trainingSchedule(DEFAULT_CONFIG, 50, 8).stepsPerEpoch, 1);
  assert.throws(() => trainingSchedule(DEFAULT_CONFIG, 50, 6), ConfigError);
});

test('--max-steps sets the total optimizer steps, overriding --epochs either way, as max_steps does in the Hugging Face Trainer', () => {
  const s = trainingSchedule(resolveConfig({ '--max-steps': '100' }), 8158, 8);
  assert.deepEqual(s, { microBatchSize: 8, gradientAccumulationSteps: 16, microBatchesPerEpoch: 1020, stepsPerEpoch: 64, totalSteps: 100, warmupSteps: 10, lrSchedulerType: 'linear', lrSchedulerKwargs: {} });
  assert.equal(trainingSchedule(resolveConfig({ '--max-steps': '1000', '--epochs': '1' }), 8158, 8).totalSteps, 1000);
  assert.equal(trainingSchedule(resolveConfig({ '--max-steps': '-1', '--epochs': '2' }), 8158, 8).totalSteps, 128);
  failsOn({ '--max-steps': '0' }, '--max-steps', /positive number of optimizer steps, or -1/);
  failsOn({ '--max-steps': '-2' }, '--max-steps', /expected a value >= -1/);
  failsOn({ '--max-steps': '2.5' }, '--max-steps', /expected an integer/);
});

test('the learning rate warms up linearly to the peak, then decays linearly to 0 at the last step', () => {
  const s = { totalSteps: 630, warmupSteps: 63, lrSchedulerType: 'linear', lrSchedulerKwargs: {} } as const;
  assert.equal(learningRateAt(0, s, 3e-4), 0);
  assert.ok(Math.abs(learningRateAt(31.5, s, 3e-4) - 1.5e-4) < 1e-12);
  assert.equal(learningRateAt(63, s, 3e-4), 3e-4);
  assert.ok(Math.abs(learningRateAt(63 + 567 / 2, s, 3e-4) - 1.5e-4) < 1e-12);
  assert.equal(learningRateAt(630, s, 3e-4), 0);
  assert.equal(learningRateAt(700, s, 3e-4), 0);
});

interface ScheduleCase {
  lrSchedulerType: string;
  totalSteps: number;
  warmupRatio: number;
  warmupStepsFlag: number;
  lrSchedulerKwargs: Record<string, number>;
  peak: number;
  warmupSteps: number;
  lrs: number[];
  roundedLibmLrs: Record<string, number>;
}

test("every step's learning rate of every --lr-scheduler-type and its --lr-scheduler-kwargs, and the warm-up of --warmup-steps or a ratio, are the Trainer's to the last bit (base_lr * lr_lambda, ceil(steps * ratio))", () => {
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/sft/lr-schedule.json', import.meta.url), 'utf8')) as { cases: ScheduleCase[] };
  const glibcMisrounded: string[] = [];
  for (const c of fixture.cases) {
    const config = resolveConfig({
      maxSteps: c.totalSteps,
      warmupRatio: c.warmupRatio,
      '--warmup-steps': String(c.warmupStepsFlag),
      '--lr-scheduler-type': c.lrSchedulerType,
      '--lr-scheduler-kwargs': JSON.stringify(c.lrSchedulerKwargs),
      learningRate: c.peak,
    });
    const schedule = trainingSchedule(config, 8158, 8);
    const name = `${c.lrSchedulerType} ${JSON.stringify(c.lrSchedulerKwargs)} over ${c.totalSteps} steps, --warmup-ratio ${c.warmupRatio} --warmup-steps ${c.warmupStepsFlag}`;
    // get_warmup_steps' count, which get_scheduler does not pass to 'constant'.
    assert.equal(schedule.warmupSteps, c.lrSchedulerType === 'constant' ? 0 : c.warmupSteps, name);
    const lrs = c.lrs.map((_, step) => learningRateAt(step, schedule, c.peak));
    // Where glibc's cos or pow is not the nearest double, the rate is the correctly rounded one's.
    const expected = c.lrs.map((lr, step) => c.roundedLibmLrs[step] ?? lr);
    const first = lrs.findIndex((lr, step) => lr !== expected[step]);
    assert.equal(first, -1, `${name}: step ${first} has lr ${lrs[first]}, the Trainer's is ${expected[first]}`);
    for (const step of Object.keys(c.roundedLibmLrs)) {
      const [a, b] = [c.lrs[+step]!, c.roundedLibmLrs[step]!];
      // One ulp of cos or pow (<= 2^-53 below 1) moves the factor by <= 2^-53.
      assert.ok(a !== b && Math.abs(a - b) <= c.peak * 2 ** -52, `${name}: glibc's rate at step ${step} differs by no more than its cosine's or power's last bit`);
      glibcMisrounded.push(`${c.totalSteps}:${step}`);
    }
  }
  assert.deepEqual(glibcMisrounded, ['997:255', '997:680', '101:48', '211:54', '997:680', '101:85'], 'the steps where the fixture notes glibc rounding cos or pow otherwise');
});

test("the polynomial schedule's power is x ** p rounded to the nearest double: x * x for p 2 and sqrt(x) for p 0.5 (both rounded correctly by IEEE 754), within V8's ** by a last bit elsewhere", () => {
  const unit = fc.double({ min: 0, max: 1, noNaN: true });
  fc.assert(fc.property(unit, (x) => roundedPow(x, 0.5) === Math.sqrt(x)));
  // Squares of at least 2^-1022: the subnormal results below are rounded twice.
  fc.assert(fc.property(fc.double({ min: 2 ** -511, max: 1, noNaN: true }), (x) => roundedPow(x, 2) === x * x));
  fc.assert(fc.property(unit, fc.double({ min: 0, max: 20, noNaN: true }), (x, p) => Math.abs(roundedPow(x, p) - x ** p) <= 2 ** -52 * x ** p + 2 ** -1074));
  assert.deepEqual([roundedPow(0, 0), roundedPow(0, 3), roundedPow(1, 7.5), roundedPow(0.25, 1)], [1, 0, 1, 0.25]);
  // Just below the midpoint between 1 - 2^-53 and 1, by about 2^-109.
  assert.equal(roundedPow(1 - 2 ** -53, 0.5), 1 - 2 ** -53);
  assert.throws(() => roundedPow(0.5, -1), RangeError);
});

test('--warmup-steps overrides --warmup-ratio when positive; constant has no warm-up; --lr-scheduler-type and --lr-scheduler-kwargs are checked, naming the flag', () => {
  const at = (overrides: Record<string, unknown>) => trainingSchedule(resolveConfig({ '--max-steps': '630', ...overrides }), 8158, 8);
  assert.equal(at({ '--warmup-steps': '7' }).warmupSteps, 7);
  assert.equal(at({ '--warmup-steps': '0', '--warmup-ratio': '0.2' }).warmupSteps, 126);
  assert.equal(at({ '--lr-scheduler-type': 'constant', '--warmup-steps': '7' }).warmupSteps, 0);
  assert.equal(at({ '--lr-scheduler-type': 'constant_with_warmup' }).warmupSteps, 63);
  assert.deepEqual(at({ '--lr-scheduler-type': 'cosine' }).lrSchedulerKwargs, { num_cycles: 0.5 });
  assert.deepEqual(at({ '--lr-scheduler-type': 'cosine_with_restarts', '--lr-scheduler-kwargs': '{"num_cycles": 3}' }).lrSchedulerKwargs, { num_cycles: 3 });
  assert.deepEqual(at({ '--lr-scheduler-type': 'polynomial', '--lr-scheduler-kwargs': { lr_end: 1e-5 } }).lrSchedulerKwargs, { lr_end: 1e-5, power: 1 });
  // Arguments whose default is None are left out unless given.
  assert.deepEqual(at({ '--lr-scheduler-type': 'cosine_warmup_with_min_lr', '--lr-scheduler-kwargs': '{"min_lr": 1e-5}' }).lrSchedulerKwargs, { num_cycles: 0.5, min_lr: 1e-5 });
  assert.deepEqual(at({ '--lr-scheduler-type': 'warmup_stable_decay', '--lr-scheduler-kwargs': '{"num_decay_steps": 100, "decay_type": "1-sqrt"}' }).lrSchedulerKwargs, {
    num_decay_steps: 100,
    warmup_type: 'linear',
    decay_type: '1-sqrt',
    min_lr_ratio: 0,
    num_cycles: 0.5,
  });
  assert.equal(at({ '--lr-scheduler-type': 'inverse_sqrt' }).warmupSteps, 63);
  const s = at({ '--lr-scheduler-type': 'constant' });
  assert.deepEqual([0, 1, 629, 630].map((step) => learningRateAt(step, s, 3e-4)), [3e-4, 3e-4, 3e-4, 3e-4]);
  failsOn({ '--lr-scheduler-type': 'greedy' }, '--lr-scheduler-type', /expected one of linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, inverse_sqrt, cosine_with_min_lr, cosine_warmup_with_min_lr, warmup_stable_decay/);
  failsOn({ '--lr-scheduler-type': 'reduce_lr_on_plateau' }, '--lr-scheduler-type', /reduce_lr_on_plateau is not supported: torch's ReduceLROnPlateau lowers the rate when the evaluation metric stops improving/);
  failsOn({ '--warmup-steps': '-1' }, '--warmup-steps', /expected a value >= 0/);
  failsOn({ '--warmup-steps': '2.5' }, '--warmup-steps', /expected an integer/);
  failsOn({ '--lr-scheduler-kwargs': 'num_cycles=2' }, '--lr-scheduler-kwargs', /expected a JSON object/);
  failsOn({ '--lr-scheduler-kwargs': '{"num_cycles": [2]}' }, '--lr-scheduler-kwargs', /JSON object of numbers/);
  failsOn({ '--lr-scheduler-type': 'cosine', '--lr-scheduler-kwargs': '{"num_cycles": "2"}' }, '--lr-scheduler-kwargs', /num_cycles must be a number, got "2"/);
  failsOn({ '--lr-scheduler-kwargs': '{"num_cycles": 2}' }, '--lr-scheduler-kwargs', /--lr-scheduler-type linear takes no arguments, got "num_cycles"/);
  failsOn({ '--lr-scheduler-type': 'cosine', '--lr-scheduler-kwargs': '{"lr_end": 0}' }, '--lr-scheduler-kwargs', /takes only num_cycles/);
  failsOn({ '--lr-scheduler-type': 'cosine', '--lr-scheduler-kwargs': '{"num_cycles": 0}' }, '--lr-scheduler-kwargs', /num_cycles must be > 0/);
  failsOn({ '--lr-scheduler-type': 'polynomial', '--lr-scheduler-kwargs': '{"lr_end": 1}' }, '--lr-scheduler-kwargs', /smaller than --learning-rate/);
  failsOn({ '--lr-scheduler-type': 'polynomial', '--lr-scheduler-kwargs': '{"power": -1}' }, '--lr-scheduler-kwargs', /power must be >= 0/);
  failsOn({ '--lr-scheduler-type': 'inverse_sqrt', '--lr-scheduler-kwargs': '{"timescale": 100}' }, '--lr-scheduler-kwargs', /inverse_sqrt takes no arguments \(transformers' get_scheduler passes it none: its timescale is the warm-up steps, or 10,000 without warm-up\), got "timescale"/);
  for (const type of ['cosine_with_min_lr', 'cosine_warmup_with_min_lr']) {
    failsOn({ '--lr-scheduler-type': type }, '--lr-scheduler-kwargs', new RegExp(`${type} needs min_lr \\(the final rate\\) or min_lr_rate`));
    failsOn({ '--lr-scheduler-type': type, '--lr-scheduler-kwargs': '{"min_lr": 1e-5, "min_lr_rate": 0.1}' }, '--lr-scheduler-kwargs', /takes one of min_lr or min_lr_rate, got both/);
    failsOn({ '--lr-scheduler-type': type, '--lr-scheduler-kwargs': '{"min_lr_rate": -0.1}' }, '--lr-scheduler-kwargs', /min_lr_rate must be >= 0/);
  }
  failsOn({ '--lr-scheduler-type': 'cosine_with_min_lr', '--lr-scheduler-kwargs': '{"min_lr": 1e-5, "warmup_lr_rate": 0.1}' }, '--lr-scheduler-kwargs', /takes only num_cycles, min_lr, min_lr_rate, got "warmup_lr_rate"/);
  failsOn({ '--lr-scheduler-type': 'warmup_stable_decay' }, '--lr-scheduler-kwargs', /warmup_stable_decay needs num_decay_steps/);
  failsOn({ '--lr-scheduler-type': 'warmup_stable_decay', '--lr-scheduler-kwargs': '{"num_decay_steps": 2.5}' }, '--lr-scheduler-kwargs', /num_decay_steps must be an integer >= 0, got 2.5/);
  failsOn({ '--lr-scheduler-type': 'warmup_stable_decay', '--lr-scheduler-kwargs': '{"num_decay_steps": 10, "decay_type": "exp"}' }, '--lr-scheduler-kwargs', /decay_type must be one of "linear", "cosine", "1-sqrt", got "exp"/);
  failsOn({ '--lr-scheduler-type': 'warmup_stable_decay', '--lr-scheduler-kwargs': '{"num_decay_steps": 10, "warmup_type": 1}' }, '--lr-scheduler-kwargs', /warmup_type must be one of/);
  failsOn({ '--lr-scheduler-type': 'polynomial', '--learning-rate': '1e-8' }, '--learning-rate', /lr_end 1e-7/);
});

test("warmup_stable_decay whose warm-up and num_decay_steps exceed the run without num_stable_steps is refused (transformers' negative num_stable_steps starts the decay part-way and the rate never reaches the peak); given num_stable_steps, or a run ending within its warm-up, it runs as transformers does", () => {
  const wsd = (steps: number, kwargs: object, overrides: Record<string, unknown> = {}) =>
    trainingSchedule(resolveConfig({ '--max-steps': String(steps), '--lr-scheduler-type': 'warmup_stable_decay', '--lr-scheduler-kwargs': JSON.stringify(kwargs), ...overrides }), 8158, 8);
  const refused = (steps: number, kwargs: object, overrides: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => wsd(steps, kwargs, overrides), (e: unknown) => e instanceof ConfigError && e.flag === '--lr-scheduler-kwargs' && pattern.test(e.message), pattern.source);
  // Warm-up ceil(50 x 0.1) = 5: transformers warms up to 0.8 of the peak, then drops to 0.42 of it (cosine decay from 55 steps in).
  refused(50, { num_decay_steps: 100 }, {}, /warm-up of 5 steps and num_decay_steps 100 add up to more than the run's 50 optimizer steps: transformers would make num_stable_steps -55 and start the decay 55 steps in.*Set num_decay_steps to at most 45, shorten the warm-up \(--warmup-steps, --warmup-ratio\), or give num_stable_steps/);
  // Without warm-up every step would be at the last 10 of 100 decay steps: at most 2.5% of the peak.
  refused(10, { num_decay_steps: 100, decay_type: 'linear' }, { '--warmup-ratio': '0' }, /warm-up of 0 steps and num_decay_steps 100 .* num_stable_steps -90/);
  refused(61, { num_decay_steps: 55 }, {}, /warm-up of 7 steps .* num_stable_steps -1 .* at most 54/);
  assert.equal(wsd(61, { num_decay_steps: 54 }).totalSteps, 61, 'warm-up and decay fill the run');
  // num_stable_steps given: the decay starts after the warm-up and the stable steps, and is cut where the run ends.
  const cut = wsd(50, { num_decay_steps: 100, num_stable_steps: 0, decay_type: 'linear' });
  assert.deepEqual([4, 5, 6, 49].map((step) => learningRateAt(step, cut, 3e-4)), [3e-4 * (4 / 5), 3e-4, 3e-4 * (1 - 1 / 100), 3e-4 * (1 - 44 / 100)]);
  // A warm-up as long as the run: every step warms up, as with the other schedules.
  const warming = wsd(10, { num_decay_steps: 5 }, { '--warmup-steps': '15' });
  assert.deepEqual([0, 9].map((step) => learningRateAt(step, warming, 3e-4)), [0, 3e-4 * (9 / 15)]);
});

test('--precision takes auto, f32 or mixed; auto is mixed for a base folder exactly where the adapter has shader-f16 and f32 for the demo model; mixed without shader-f16 is refused', () => {
  assert.equal(resolveConfig({ '--precision': 'f32' }).precision, 'f32');
  assert.throws(() => resolveConfig({ '--precision': 'fp16' }), (e: unknown) => e instanceof ConfigError && e.message.includes('--precision') && e.message.includes('auto, f32, mixed'));
  assert.equal(resolvePrecision('auto', true), 'mixed');
  assert.equal(resolvePrecision('auto', false), 'f32');
  assert.equal(resolvePrecision('auto', true, true), 'f32');
  assert.equal(resolvePrecision('mixed', true, true), 'mixed');
  assert.equal(resolvePrecision('f32', true), 'f32');
  assert.throws(() => resolvePrecision('mixed', false), /--precision.*shader-f16/);
});
