// The huatuo-train command line: train (and, with no arguments, the demonstration run), generate,
// merge, eval, plan and serve, plus sus and gen-data from their packages. The only module that exits.
import { Command, Option } from 'commander';
import { initWebGPU, readyMatmul } from '@huatuo/tensor';
import { applyLora, loadAdapter, mergeAdapter, saveMergedModel, writeFileAtomic } from '@huatuo/llama';
import { buildSusCommand } from '@huatuo/sus';
import { buildGenDataCommand } from '@huatuo/kg';
import { mkdir, appendFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  CONFIG_OPTIONS,
  ConfigError,
  DEFAULT_CONFIG,
  DEFAULT_GENERATION,
  DEMO_DATA_PATH,
  DEMO_OVERRIDES,
  LoraModel,
  answerQuestions,
  baseDtypeOption,
  checkContext,
  checkMergeOut,
  checkMicroBatchFits,
  checkpointDir,
  earlierRun,
  evaluate,
  loadBaseModel,
  loadRecords,
  resolveConfig,
  resolveTemplate,
  runFiles,
  runTraining,
  tokenizeRecords,
  withInitAdapter,
  type Answer,
  type RunPlan,
  type TrainConfig,
} from '@huatuo/sft';
import { describeFileSystemError } from './fs-errors.js';
import { progressReporter } from './progress.js';
import { buildServeCommand } from './serve-command.js';
import { buildPlanCommand } from './plan-command.js';

const out = process.stdout;
const err = process.stderr;
const say = (s = '') => out.write(`${s}\n`);

/** Where the demonstration run writes, relative to the working directory. */
export const DEMO_OUTPUT_DIR = './huatuo-output';

/** The demonstration: a short run of the recipe on the tiny model and the built-in sample. */
export const DEMO_CONFIG: Partial<TrainConfig> = {
  ...DEMO_OVERRIDES,
  outputDir: DEMO_OUTPUT_DIR,
  numEpochs: 3,
  cutoffLen: 256,
};

const DEMO_QUESTION = '我最近经常头痛，还伴有恶心，应该怎么办？';

function camel(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Adds every recipe flag to a command, with the recipe's default in the help. */
function addRecipeOptions(cmd: Command, defaults: TrainConfig): Command {
  for (const o of CONFIG_OPTIONS) {
    if (o.key === 'baseModel' || o.key === 'dataPath') continue;
    const value = defaults[o.key];
    const shown = Array.isArray(value) ? value.join(',') : String(value);
    const placeholder = o.kind === 'bool' ? '[bool]' : o.kind === 'list' ? '<list>' : o.choices ? `<${o.choices.join('|')}>` : '<value>';
    cmd.addOption(new Option(`${o.flag} ${placeholder}`, `${o.help} (default: ${shown})`));
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
  say(`plan: ${s.totalSteps} optimizer steps (${steps}), batch ${config.batchSize} = micro-batch ${plan.microBatchSize} x ${s.gradientAccumulationSteps} accumulation, warm-up ${s.warmupSteps} steps`);
  const from = initAdapter ? ` (the --init-adapter's own, from ${initAdapter})` : '';
  say(`plan: LoRA r ${config.loraR}, alpha ${config.loraAlpha}, dropout ${config.loraDropout} on ${config.loraTargetModules.join(', ')}${from}; AdamW lr ${config.learningRate}`);
  say(
    dtype === 'f16'
      ? 'precision: mixed (--precision): f16 base and activations; f32 norm and attention statistics, loss, LoRA weights, gradients and AdamW state; dynamic loss scaling from 65536'
      : 'precision: f32 (--precision): every weight, activation and gradient in f32',
  );
  say(`memory: ${plan.memory}`);
}

/** Set by the global --verbose flag: show the GPU runtime's own notices. */
let verbose = false;

async function openDevice(): Promise<void> {
  const info = await initWebGPU({ showDawnNotices: verbose });
  say(`device: ${info.adapterName} (${[...info.features].join(', ') || 'no optional features'})`);
  await readyMatmul();
}

/** Runs training with progress, Ctrl-C handling and the final summary. */
async function trainCommand(
  recipe: TrainConfig,
  opts: { initAdapter?: string; resume?: string | boolean; dryRun?: boolean; overwriteOutputDir?: boolean; given?: (keyof TrainConfig)[] },
  demo: boolean,
): Promise<void> {
  const config = opts.initAdapter ? await withInitAdapter(runFiles, recipe, opts.initAdapter, opts.given ?? []) : recipe;
  await openDevice();
  if (demo) {
    say('This is the demonstration run: a LoRA adapter trained on a built-in tiny LLaMA (random weights,');
    say("LLaMA's real 32000-piece tokenizer) with 225 Chinese medical QA pairs written for this project.");
    say('It runs the same pipeline as a LLaMA-7B fine-tune. With a real base model:');
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
      resume: opts.resume === true ? 'latest' : (opts.resume as string | undefined) ?? null,
      dryRun: opts.dryRun ?? false,
      overwriteOutputDir: opts.overwriteOutputDir ?? false,
      signal: controller.signal,
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
    if (r.bestCheckpoint) say(`best validation loss ${r.state.bestValLoss?.toFixed(4)} at step ${r.state.bestStep}: loaded ${r.bestCheckpoint}`);
    say(`wrote ${resolve(config.outputDir)}: adapter_config.json, adapter_model.safetensors, metrics.jsonl, loss.svg, checkpoints`);
    const question = outcome.data.valRecords[0]?.instruction ?? DEMO_QUESTION;
    const [answer] = await answerQuestions(outcome.base.model, outcome.base.tokenizer, outcome.data.template, [question], {
      ...DEFAULT_GENERATION,
      maxNewTokens: demo ? 48 : DEFAULT_GENERATION.maxNewTokens,
    });
    say();
    say(`sample question: ${question}`);
    say(`sample answer:   ${answer?.answer || '(empty)'}`);
    if (demo) say('(the demonstration model has random base weights: expect fluent nonsense, not medicine)');
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function buildTrainCommand(): Command {
  const cmd = new Command('train')
    .description("fine-tune a LoRA adapter with HuaTuo's recipe (input-only prompts, loss on the answer only)")
    .option('--base <folder>', 'base model: a Hugging Face LLaMA folder (config.json, *.safetensors, tokenizer.json or tokenizer.model); default: the built-in tiny demo model')
    .option('--data <file>', 'training data (required), JSON array or JSONL of {instruction, input, output}; `huatuo-train` with no command trains on the built-in demo sample')
    .option('--init-adapter <dir>', "start from an existing PEFT adapter folder, training it as it is (its r, alpha, dropout and target modules)")
    .option('--resume [dir]', 'continue an interrupted run from a checkpoint folder (default: the newest in --output-dir)')
    .option('--overwrite-output-dir', "start afresh in an --output-dir holding another run, removing that run's adapter, metrics and checkpoints first")
    .option('--dry-run', 'validate data, model and flags, print the plan, train nothing');
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
    await trainCommand(config, { ...opts, given }, false);
  });
  return cmd;
}

const QUANTIZE_HELP = 'frozen base projections: none, int8 (per-row absmax) or nf4 (QLoRA 4-bit)';

/** The checked value of a command's --quantize flag. */
function quantizeFlag(v: unknown): TrainConfig['quantize'] {
  return resolveConfig({ '--quantize': v ?? 'none' }).quantize;
}

function buildGenerateCommand(): Command {
  return new Command('generate')
    .description("answer questions with a base model and an optional adapter, as HuaTuo's infer.py (4 beams)")
    .option('--base <folder>', 'base model folder (default: the built-in tiny demo model)')
    .option('--adapter <dir>', 'PEFT adapter folder (adapter_config.json + adapter_model.safetensors)')
    .option('--base-dtype <dtype>', 'dtype of the base weights: f32, f16 (half the memory) or auto (f16 where the adapter has shader-f16)', 'auto')
    .option('--prompt <text>', 'one question')
    .option('--input <file>', 'questions: JSON/JSONL records with "instruction" (e.g. HuaTuo infer.json)')
    .option('--output <file>', 'write JSONL {question, answer} here, replacing the file only when every answer is written (default: print)')
    .option('--append', 'add the answers to the end of --output instead of replacing it')
    .option('--template <name>', 'prompt template name or file', 'med_template')
    .option('--num-beams <n>', 'beams (1: greedy or sampling)', String(DEFAULT_GENERATION.numBeams))
    .option('--max-new-tokens <n>', 'most new tokens per answer', String(DEFAULT_GENERATION.maxNewTokens))
    .option('--do-sample', 'sample with temperature, top-k and top-p instead of beam search')
    .option('--temperature <t>', 'sampling temperature', String(DEFAULT_GENERATION.temperature))
    .option('--top-p <p>', 'nucleus sampling mass', String(DEFAULT_GENERATION.topP))
    .option('--top-k <k>', 'sample among the k most likely tokens', String(DEFAULT_GENERATION.topK))
    .option('--repetition-penalty <x>', 'penalty for repeated tokens (1: none)', '1')
    .option('--seed <n>', 'sampling seed', '0')
    .option('--quantize <format>', QUANTIZE_HELP, 'none')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      if (!opts.prompt === !opts.input) throw new ConfigError('--prompt', 'give exactly one of --prompt <text> or --input <file>');
      if (opts.append && !opts.output) throw new ConfigError('--append', 'appends to the file of --output <file>; give one');
      const num = (flag: string, v: unknown, integer: boolean, min: number): number => {
        const n = Number(v);
        if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) throw new ConfigError(flag, `expected ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(v)}`);
        return n;
      };
      const generation = {
        numBeams: num('--num-beams', opts.numBeams, true, 1),
        maxNewTokens: num('--max-new-tokens', opts.maxNewTokens, true, 1),
        doSample: Boolean(opts.doSample),
        temperature: num('--temperature', opts.temperature, false, 0),
        topP: num('--top-p', opts.topP, false, 0),
        topK: num('--top-k', opts.topK, true, 0),
        repetitionPenalty: num('--repetition-penalty', opts.repetitionPenalty, false, 0),
        seed: num('--seed', opts.seed, true, 0),
      };
      if (generation.doSample) generation.numBeams = 1;
      const template = resolveTemplate(String(opts.template));
      const questions = opts.prompt ? [String(opts.prompt)] : (await loadRecords(String(opts.input))).records.map((r) => r.instruction);
      const quantize = quantizeFlag(opts.quantize);
      await openDevice();
      const base = await loadBaseModel((opts.base as string | undefined) ?? null, undefined, { quantize, dtype: baseDtypeOption(opts.baseDtype) });
      if (opts.adapter) {
        applyLora(base.model, {});
        await loadAdapter(base.model, String(opts.adapter));
      }
      const output = opts.output ? String(opts.output) : null;
      const line = (a: Answer) => `${JSON.stringify({ question: a.question, answer: a.answer })}\n`;
      const answerAll = (onAnswer: (a: Answer) => Promise<void>) => answerQuestions(base.model, base.tokenizer, template, questions, { ...generation, onAnswer });
      if (output === null) {
        await answerAll(async (a) => void say(`${a.question}\n=> ${a.answer}\n`));
        return;
      }
      await mkdir(dirname(resolve(output)), { recursive: true });
      if (opts.append) {
        await answerAll((a) => appendFile(output, line(a)));
        say(`appended ${questions.length} answers to ${output}`);
      } else {
        // The answers replace the file only once all are written: a failed run leaves it as it was.
        await writeFileAtomic(output, (file) => answerAll(async (a) => void (await file.write(line(a)))));
        say(`wrote ${questions.length} answers to ${output}`);
      }
    });
}

function buildMergeCommand(): Command {
  return new Command('merge')
    .description('merge a LoRA adapter into the base weights and save a Hugging Face folder (sharded safetensors, index, config, tokenizer)')
    .requiredOption('--base <folder>', 'base model folder')
    .requiredOption('--adapter <dir>', 'PEFT adapter folder')
    .option('--base-dtype <dtype>', 'dtype of the base weights: f32, f16 (half the memory) or auto (f16 where the adapter has shader-f16)', 'auto')
    .requiredOption('--out <folder>', 'where to write the merged model')
    .option('--max-shard-size <bytes>', 'largest shard file in bytes', String(2 * 1024 ** 3))
    .option('--overwrite', 'replace a model already in --out (never the --base folder)')
    .option('--quantize <format>', `${QUANTIZE_HELP}, as the adapter was trained; the merged model is written in f16`, 'none')
    .action(async (opts: { base: string; adapter: string; out: string; maxShardSize: string; overwrite?: boolean; quantize?: string; baseDtype: string }) => {
      const quantize = quantizeFlag(opts.quantize);
      checkMergeOut(opts.base, opts.out, opts.overwrite ?? false);
      await openDevice();
      const base = await loadBaseModel(opts.base, undefined, { quantize, dtype: baseDtypeOption(opts.baseDtype) });
      if (quantize !== 'none') say(`the base is loaded ${quantize}-quantized: each merged weight is dequantized, merged in f32 and written as f16`);
      applyLora(base.model, {});
      await loadAdapter(base.model, opts.adapter);
      mergeAdapter(base.model);
      const result = await saveMergedModel(base.model, opts.out, { maxShardBytes: Number(opts.maxShardSize), tokenizerDir: opts.base });
      say(`wrote ${opts.out} (${JSON.stringify(result).slice(0, 200)})`);
    });
}

function buildEvalCommand(): Command {
  return new Command('eval')
    .description('validation loss and perplexity of a base model (and adapter) on a data file, with the training prompt and masking')
    .option('--base <folder>', 'base model folder (default: the built-in tiny demo model)')
    .option('--adapter <dir>', 'PEFT adapter folder')
    .option('--data <file>', 'data file (default: the built-in demo sample)')
    .option('--base-dtype <dtype>', 'dtype of the base weights: f32, f16 (half the memory) or auto (f16 where the adapter has shader-f16)', 'auto')
    .option('--template <name>', 'prompt template name or file', DEFAULT_CONFIG.template)
    .option('--cutoff-len <n>', 'longest tokenized example', String(DEFAULT_CONFIG.cutoffLen))
    .option('--micro-batch <n>', 'examples per forward pass', '1')
    .option('--quantize <format>', QUANTIZE_HELP, 'none')
    .action(async (opts: { base?: string; adapter?: string; data?: string; template: string; cutoffLen: string; microBatch: string; quantize?: string; baseDtype: string }) => {
      const config = resolveConfig({ '--cutoff-len': opts.cutoffLen, '--micro-batch': opts.microBatch, '--template': opts.template, '--batch-size': opts.microBatch, '--quantize': opts.quantize ?? 'none' });
      await openDevice();
      const base = await loadBaseModel(opts.base ?? null, undefined, { quantize: config.quantize, dtype: baseDtypeOption(opts.baseDtype) });
      checkContext(config.cutoffLen, base.model.config, base.name);
      if (opts.adapter) {
        applyLora(base.model, {});
        await loadAdapter(base.model, opts.adapter);
      }
      const { records, file } = await loadRecords(opts.data ?? DEMO_DATA_PATH);
      const tok = base.tokenizer;
      const { examples } = tokenizeRecords(records, resolveTemplate(opts.template), { encode: (t, o) => tok.encode(t, o), bosId: tok.bosId, eosId: tok.eosId, padId: 0 }, { cutoffLen: config.cutoffLen, trainOnInputs: false });
      checkMicroBatchFits(base.model, examples, config.microBatchSize as number, { file, flag: '--micro-batch', shuffled: false });
      const loss = await evaluate(new LoraModel(base.model, base.name), examples, config, config.microBatchSize as number);
      say(`${file}: ${examples.length} records, loss ${loss.toFixed(4)}, perplexity ${Math.exp(loss).toFixed(3)} (base weights ${base.model.dtype})`);
    });
}

/** The whole command tree. */
export function buildProgram(): Command {
  const program = new Command('huatuo-train')
    .description(
      "HuaTuo's medical instruction tuning of LLaMA on WebGPU. With no command: the demonstration run " +
        `(a LoRA on a built-in tiny LLaMA with the built-in sample, written to ${DEMO_OUTPUT_DIR}).`,
    )
    .version('0.1.0')
    .option('--verbose', "also show the GPU runtime's own notices (Dawn's adapter limit warnings)")
    .hook('preAction', (command) => {
      verbose = Boolean(command.opts().verbose);
    })
    .showHelpAfterError()
    .action(async () => {
      const config = resolveConfig({}, { ...DEFAULT_CONFIG, ...DEMO_CONFIG } as TrainConfig);
      await trainCommand(config, { overwriteOutputDir: true }, true);
    });
  program.addCommand(buildTrainCommand());
  program.addCommand(buildGenerateCommand());
  program.addCommand(buildMergeCommand());
  program.addCommand(buildEvalCommand());
  program.addCommand(buildPlanCommand(say));
  program.addCommand(buildServeCommand());
  program.addCommand(buildSusCommand());
  program.addCommand(buildGenDataCommand());
  return program;
}

/** Runs the CLI; errors print their message (no stack) and exit 1. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (e) {
    const fileProblem = describeFileSystemError(e);
    if (fileProblem !== null) {
      err.write(`huatuo-train: ${fileProblem}\n`);
      process.exitCode = 1;
      return;
    }
    const error = e as Error;
    const known = error && typeof error.name === 'string' && error.name !== 'Error' && error.name !== 'TypeError';
    err.write(`huatuo-train: ${known ? `${error.name}: ` : ''}${error?.message ?? String(e)}\n`);
    if (!known && process.env.HUATUO_DEBUG) err.write(`${error?.stack}\n`);
    process.exitCode = 1;
  }
}
