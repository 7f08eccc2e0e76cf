// `huatuo-train train` and the demonstration run (no command): the recipe's flags, the plan printed
// before the first step, progress, Ctrl-C saving a checkpoint, and a sample answer at the end.
import { Command, Option } from 'commander';
import {
  CONFIG_OPTIONS,
  ConfigError,
  DEFAULT_CONFIG,
  DEFAULT_GENERATION,
  DEMO_OVERRIDES,
  answerQuestions,
  checkpointDir,
  earlierRun,
  findResumePoint,
  resolveConfig,
  runFiles,
  runTraining,
  withInitAdapter,
  type RunPlan,
  type TrainConfig,
} from '@huatuo/sft';
import { resolve } from 'node:path';
import { QUANTIZE_THREADS_HELP, contextFlags, quantizeThreadsFlag, tokenizerTrustFlag, withContextFlags, withTokenizerTrustFlag } from './base-flags.js';
import { DEMO_BASE, sayAnswer, trainDemoBase } from './demo.js';
import { progressReporter } from './progress.js';
import { openDevice, say } from './terminal.js';

const out = process.stdout;
const err = process.stderr;

/** Where the demonstration run writes, relative to the working directory. */
export const DEMO_OUTPUT_DIR = './huatuo-output';

/** The demonstration's LoRA phase: a short run of the recipe on the tiny model and a few records of the built-in sample. */
export const DEMO_CONFIG: Partial<TrainConfig> = {
  ...DEMO_OVERRIDES,
  outputDir: DEMO_OUTPUT_DIR,
  // The LoRA phase sees only the stand-in base's few records (one batch): 40 steps at a learning
  // rate raised from the recipe's 3e-4 so that so short a run moves the adapter.
  numEpochs: 40,
  batchSize: DEMO_BASE.records,
  learningRate: 1e-2,
  loggingSteps: 4,
  evalSteps: 20,
  saveSteps: 20,
  cutoffLen: 256,
};

const DEMO_QUESTION = '我最近经常头痛，还伴有恶心，应该怎么办？';

function camel(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** `<a|b|c>`, or `<name>` where the list would widen the help's flag column (the help names them). */
function choicesPlaceholder(choices: readonly string[]): string {
  const all = `<${choices.join('|')}>`;
  return all.length <= 40 ? all : '<name>';
}

/** Adds every recipe flag to a command, with the recipe's default in the help. */
function addRecipeOptions(cmd: Command, defaults: TrainConfig): Command {
  for (const o of CONFIG_OPTIONS) {
    if (o.key === 'baseModel' || o.key === 'dataPath') continue;
    const value = defaults[o.key];
    const shown = Array.isArray(value) ? value.join(',') : typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
    const placeholder = o.kind === 'bool' ? '[bool]' : o.kind === 'list' ? '<list>' : o.kind === 'json-numbers' ? '<json>' : o.choices ? choicesPlaceholder(o.choices) : '<value>';
    cmd.addOption(new Option(`${o.flag} ${placeholder}`, `${o.help} (default: ${shown}${o.defaultNote ? `; ${o.defaultNote}` : ''})`));
  }
  return cmd;
}

function recipeOverrides(opts: Record<string, unknown>): Record<string, unknown> {
  const overrides: Record<string, unknown> = {};
  for (const o of CONFIG_OPTIONS) {
    const v = opts[camel(o.flag)];
    if (v !== undefined) overrides[o.flag] = v === true ? 'true' : v;
  }
  return overrides;
}

function printPlan(plan: RunPlan, config: TrainConfig, dataFile: string, warnings: number, initAdapter: string | null, dtype: string): void {
  const s = plan.schedule;
  say(`data: ${dataFile}: ${plan.records.train} training and ${plan.records.val} validation records, ${plan.tokens.train} training tokens (longest ${plan.tokens.longest})`);
  if (warnings > 0) say(`data: ${warnings} records were cut to --cutoff-len ${config.cutoffLen} or left without EOS (as the original recipe does)`);
  const steps = config.maxSteps > 0 ? `--max-steps ${config.maxSteps}, ${s.stepsPerEpoch} per epoch: ${+(s.totalSteps / s.stepsPerEpoch).toFixed(2)} epochs` : `${s.stepsPerEpoch} per epoch x ${config.numEpochs} epochs`;
  say(`plan: ${s.totalSteps} optimizer steps (${steps}), batch ${config.batchSize} = micro-batch ${plan.microBatchSize} x ${s.gradientAccumulationSteps} accumulation, warm-up ${s.warmupSteps} steps, ${s.lrSchedulerType} schedule`);
  const from = initAdapter ? ` (the --init-adapter's own, from ${initAdapter})` : '';
  say(`plan: LoRA r ${config.loraR}, alpha ${config.loraAlpha}, dropout ${config.loraDropout}${config.loraUseRslora ? ' (rsLoRA: alpha / sqrt(r))' : ''}${config.loraUseDora ? ' with DoRA magnitudes' : ''} on ${config.loraTargetModules.join(', ')}${config.loraModulesToSave.length > 0 ? `, ${config.loraModulesToSave.join(', ')} trained in full` : ''}${from}; AdamW lr ${config.learningRate}`);
  say(
    dtype === 'f16'
      ? 'precision: mixed (--precision): f16 base and activations; f32 norm and attention statistics, loss, LoRA weights, gradients and AdamW state; dynamic loss scaling from 65536'
      : 'precision: f32 (--precision): every weight, activation and gradient in f32',
  );
  say(`memory: ${plan.memory}`);
}

/** Runs training (`demo`: the demonstration run) with progress, Ctrl-C handling and the final summary. */
export async function trainCommand(
  recipe: TrainConfig,
  opts: {
    initAdapter?: string;
    resume?: string | boolean;
    dryRun?: boolean;
    overwriteOutputDir?: boolean;
    given?: (keyof TrainConfig)[];
    quantizeThreads?: number;
    /** --max-model-len and --allow-long-max-model-len. */
    context?: { maxModelLen?: number; allowLongMaxModelLen?: boolean };
    /** --trust-tokenizer-patterns. */
    trustTokenizerPatterns?: boolean;
  },
  demo: boolean,
): Promise<void> {
  const config = opts.initAdapter ? await withInitAdapter(runFiles, recipe, opts.initAdapter, opts.given ?? []) : recipe;
  const resume = opts.resume === true ? 'latest' : (opts.resume as string | undefined) ?? null;
  // A missing checkpoint is refused before the device opens and the model loads.
  if (resume !== null) await findResumePoint(resume, config.outputDir);
  await openDevice();
  if (demo) {
    say('This is the demonstration run, in two phases on a built-in tiny LLaMA (2 layers, 64 wide, random');
    say("weights at first, LLaMA's real 32000-piece tokenizer) and the built-in Chinese medical QA sample.");
    say(`Phase 1 stands in for LLaMA's pretraining: the tiny base trains every weight for ${DEMO_BASE.steps} steps on`);
    say(`${DEMO_BASE.records} of the sample's records, so that it knows them. Phase 2 is HuaTuo's recipe itself: a LoRA`);
    say('adapter on the frozen base, trained on the answers, with the same pipeline as a LLaMA-7B fine-tune.');
    say('A real run starts from a pretrained LLaMA instead:');
    say('  huatuo-train train --base <hugging-face-llama-folder> --data <file.json>');
    say();
  }
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      err.write('\ninterrupted: saving a checkpoint at the end of this step (Ctrl-C again to quit without saving)\n');
      controller.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  try {
    const outcome = await runTraining({
      config,
      initAdapter: opts.initAdapter ?? null,
      explicitKeys: opts.given ?? [],
      resume,
      dryRun: opts.dryRun ?? false,
      overwriteOutputDir: opts.overwriteOutputDir ?? false,
      signal: controller.signal,
      prepareBase: demo ? trainDemoBase : undefined,
      baseModel: { ...(opts.quantizeThreads === undefined ? {} : { quantizeThreads: opts.quantizeThreads }), ...opts.context, trustTokenizerPatterns: opts.trustTokenizerPatterns ?? false },
      onPlan: async (plan, data, base) => {
        printPlan(plan, config, data.file, data.warnings.length, opts.initAdapter ?? null, base.model.dtype);
        const earlier = opts.resume ? [] : await earlierRun(runFiles, config.outputDir);
        if (opts.overwriteOutputDir && earlier.length > 0) {
          say(`output: ${resolve(config.outputDir)} holds an earlier run (${earlier.length} files and checkpoints); ${opts.dryRun ? 'a real run removes' : 'removing'} it before the first step`);
        }
      },
      onProgress: progressReporter(out, Boolean(out.isTTY)),
    });
    if (!outcome.result) {
      say('dry run: data, model and plan are valid; nothing was trained');
      return;
    }
    const r = outcome.result;
    if (r.interrupted) {
      say(`stopped at step ${r.state.step}; resume with: huatuo-train train --resume ${checkpointDir(resolve(config.outputDir), r.state.step)} (and the same flags)`);
      process.exitCode = 130;
      return;
    }
    if (r.bestCheckpoint) {
      const best = `best validation loss ${r.state.bestValLoss?.toFixed(4)} at step ${r.state.bestStep}`;
      const atBest = r.state.bestStep !== null && resolve(r.bestCheckpoint) === checkpointDir(resolve(config.outputDir), r.state.bestStep);
      say(atBest ? `${best}: loaded ${r.bestCheckpoint}` : `${best}, which has no checkpoint: loaded ${r.bestCheckpoint}, the best_model_checkpoint of the last save`);
    }
    say(`wrote ${resolve(config.outputDir)}: adapter_config.json, adapter_model.safetensors, metrics.jsonl, loss.svg, checkpoints`);
    if (demo) {
      const record = outcome.data.trainRecords[0]!;
      say();
      say(`sample question: ${record.instruction}`);
      say(`expected answer: ${record.output}`);
      await sayAnswer(outcome.base, outcome.data, record.instruction, 'after LoRA:      ');
      return;
    }
    const question = outcome.data.valRecords[0]?.instruction ?? DEMO_QUESTION;
    const [answer] = await answerQuestions(outcome.base.model, outcome.base.tokenizer, outcome.data.template, [question], DEFAULT_GENERATION);
    say();
    say(`sample question: ${question}`);
    say(`sample answer:   ${answer?.answer || '(empty)'}`);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The `train` subcommand. */
export function buildTrainCommand(): Command {
  const cmd = new Command('train')
    .description("fine-tune a LoRA adapter with HuaTuo's recipe (input-only prompts, loss on the answer only)")
    .option('--base <folder>', 'base model: a Hugging Face LLaMA, Mistral or Qwen2 folder (config.json, *.safetensors or pytorch_model*.bin, tokenizer.json or tokenizer.model); default: the built-in tiny demo model')
    .option('--data <file>', 'training data (required), JSON array, JSONL or Parquet of {instruction, input, output}; `huatuo-train` with no command trains on the built-in demo sample')
    .option('--init-adapter <dir>', "start from an existing PEFT adapter folder, training it as it is (its r, alpha, dropout, target modules, use_rslora, use_dora and modules_to_save)")
    .option('--resume [dir]', 'continue an interrupted run from a checkpoint folder (default: the newest in --output-dir)')
    .option('--overwrite-output-dir', "start afresh in an --output-dir holding another run, removing that run's adapter, metrics and checkpoints first")
    .option('--dry-run', 'validate data, model and flags, print the plan, train nothing')
    .option('--quantize-threads <n>', QUANTIZE_THREADS_HELP);
  withTokenizerTrustFlag(cmd);
  withContextFlags(cmd);
  addRecipeOptions(cmd, DEFAULT_CONFIG);
  cmd.action(async (opts: Record<string, unknown>) => {
    if (opts.data === undefined) {
      throw new ConfigError(
        '--data',
        'train needs a data file: pass --data <file.json|file.jsonl> with {instruction, input, output} records (HuaTuo trains on llama_data.json). ' +
          'For the demonstration on the built-in sample, run huatuo-train with no command.',
      );
    }
    const config = resolveConfig({
      ...recipeOverrides(opts),
      baseModel: (opts.base as string | undefined) ?? null,
      dataPath: (opts.data as string | undefined) ?? null,
    });
    const given = CONFIG_OPTIONS.filter((o) => opts[camel(o.flag)] !== undefined).map((o) => o.key);
    await trainCommand(config, { ...opts, given, quantizeThreads: quantizeThreadsFlag(opts.quantizeThreads), context: contextFlags(opts), ...tokenizerTrustFlag(opts) }, false);
  });
  return cmd;
}
