// `huatuo-train generate`, `merge` and `eval`: a base model (and adapter) answering questions (HuaTuo's
// prompt template or the model's chat template), merged into a Hugging Face folder, or scored on a data file.
import { Command } from 'commander';
import { checkMergedModelFolder, finishInterruptedSave, mergeAdapter, saveMergedModel, saveStagingName, writeFileAtomic } from '@huatuo/llama';
import {
  ConfigError,
  DEFAULT_CONFIG,
  DEFAULT_GENERATION,
  DEMO_DATA_PATH,
  LoraModel,
  answerQuestions,
  baseDtypeOption,
  checkContext,
  checkMergeOut,
  checkMicroBatchFits,
  evaluate,
  loadAdapterWithTokenizer,
  loadBaseModel,
  loadRecords,
  resolveConfig,
  resolveTemplate,
  textTokenizer,
  tokenizeRecords,
  type Answer,
  type QaRecord,
} from '@huatuo/sft';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { TEMPLATE_HELP, templateFlag } from './template-flag.js';
import { QUANTIZE_HELP, QUANTIZE_THREADS_HELP, contextFlags, quantizeFlag, quantizeThreadsFlag, tokenizerTrustFlag, withBaseFlags, withContextFlags } from './base-flags.js';
import { openDevice, say } from './terminal.js';

/** The `generate` subcommand. */
export function buildGenerateCommand(): Command {
  return withContextFlags(withBaseFlags(new Command('generate').description("answer questions with a base model and an optional adapter, as HuaTuo's infer.py (4 beams)")))
    .option('--prompt <text>', 'one question')
    .option('--input <file>', 'questions: JSON/JSONL/Parquet records with "instruction" (e.g. HuaTuo infer.json); with a chat template, a non-empty "input" follows it after a newline')
    .option('--output <file>', 'write JSONL {question, answer} here, replacing the file only when every answer is written (default: print)')
    .option('--append', 'add the answers to the end of --output instead of replacing it')
    .option('--template <name>', `how questions become prompts: ${TEMPLATE_HELP}`, 'med_template')
    .option('--num-beams <n>', 'beams (1: greedy or sampling)', String(DEFAULT_GENERATION.numBeams))
    .option('--max-new-tokens <n>', 'most new tokens per answer', String(DEFAULT_GENERATION.maxNewTokens))
    .option('--do-sample', 'sample with temperature, top-k and top-p instead of beam search')
    .option('--temperature <t>', 'sampling temperature', String(DEFAULT_GENERATION.temperature))
    .option('--top-p <p>', 'nucleus sampling mass', String(DEFAULT_GENERATION.topP))
    .option('--top-k <k>', 'sample among the k most likely tokens', String(DEFAULT_GENERATION.topK))
    .option('--repetition-penalty <x>', 'penalty for repeated tokens (1: none)', '1')
    .option('--frequency-penalty <x>', "OpenAI's frequency penalty in [-2, 2]: a generated token's score falls by x per time it occurs (greedy or sampling)", '0')
    .option('--presence-penalty <x>', "OpenAI's presence penalty in [-2, 2]: a generated token's score falls by x once it occurs (greedy or sampling)", '0')
    .option('--seed <n>', 'sampling seed', '0')
    .option('--quantize <format>', QUANTIZE_HELP, 'none')
    .option('--quantize-threads <n>', QUANTIZE_THREADS_HELP)
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      if (!opts.prompt === !opts.input) throw new ConfigError('--prompt', 'give exactly one of --prompt <text> or --input <file>');
      if (opts.append && !opts.output) throw new ConfigError('--append', 'appends to the file of --output <file>; give one');
      const num = (flag: string, v: unknown, integer: boolean, min: number): number => {
        const n = Number(v);
        if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) throw new ConfigError(flag, `expected ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(v)}`);
        return n;
      };
      const penalty = (flag: string, v: unknown): number => {
        const n = Number(v);
        if (!(n >= -2 && n <= 2)) throw new ConfigError(flag, `expected a number in [-2, 2] (OpenAI's range), got ${String(v)}`);
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
        frequencyPenalty: penalty('--frequency-penalty', opts.frequencyPenalty),
        presencePenalty: penalty('--presence-penalty', opts.presencePenalty),
        seed: num('--seed', opts.seed, true, 0),
      };
      if (generation.doSample) generation.numBeams = 1;
      for (const [flag, v] of [['--frequency-penalty', generation.frequencyPenalty], ['--presence-penalty', generation.presencePenalty]] as const) {
        if (v !== 0 && generation.numBeams > 1) throw new ConfigError(flag, `applies to greedy decoding and sampling, not beam search (--num-beams ${generation.numBeams}); add --do-sample or --num-beams 1`);
      }
      const templateOf = templateFlag('generate', String(opts.template), (opts.base as string | undefined) ?? null, opts.adapter ? String(opts.adapter) : undefined);
      // HuaTuo's infer.py asks the instruction alone; a chat model gets instruction and input as one
      // user message, joined by a newline as LLaMA-Factory's alpaca converter joins them.
      const question = (r: QaRecord) => (templateOf.chat && r.input !== '' ? `${r.instruction}\n${r.input}` : r.instruction);
      const questions = opts.prompt ? [String(opts.prompt)] : (await loadRecords(String(opts.input), 'questions')).records.map(question);
      const quantize = quantizeFlag(opts.quantize);
      const quantizeThreads = quantizeThreadsFlag(opts.quantizeThreads);
      const context = contextFlags(opts);
      await openDevice();
      const trust = tokenizerTrustFlag(opts);
      const base = await loadBaseModel((opts.base as string | undefined) ?? null, undefined, { quantize, quantizeThreads, dtype: baseDtypeOption(opts.baseDtype), ...context, ...trust });
      const template = templateOf.forTokenizer(opts.adapter ? await loadAdapterWithTokenizer(base, String(opts.adapter), trust) : null);
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

/** The `merge` subcommand. */
export function buildMergeCommand(): Command {
  const merge = new Command('merge').description(
    'merge a LoRA adapter into the base weights and save a Hugging Face folder (sharded safetensors, index, config, tokenizer)',
  );
  return withBaseFlags(merge, true)
    .requiredOption('--out <folder>', 'where to write the merged model')
    .option('--max-shard-size <bytes>', 'largest shard file in bytes', String(2 * 1024 ** 3))
    .option('--overwrite', 'replace a model already in --out (never the --base folder)')
    .option('--quantize <format>', `${QUANTIZE_HELP}, as the adapter was trained; the merged model is written in f16`, 'none')
    .option('--quantize-threads <n>', QUANTIZE_THREADS_HELP)
    .action(async (opts: { base: string; adapter: string; out: string; maxShardSize: string; overwrite?: boolean; quantize?: string; quantizeThreads?: string; baseDtype: string; trustTokenizerPatterns?: boolean }) => {
      const quantize = quantizeFlag(opts.quantize);
      const quantizeThreads = quantizeThreadsFlag(opts.quantizeThreads);
      const interrupted = await finishInterruptedSave(opts.out);
      if (interrupted === 'completed') say(`${opts.out}: completed an earlier save there that was interrupted after all its files were written`);
      if (interrupted === 'discarded') say(`${opts.out}: removed ${saveStagingName}, left by an earlier save there that was interrupted before all its files were written; the folder's earlier files are as they were`);
      checkMergeOut(opts.base, opts.out, opts.overwrite ?? false);
      // The save's refusal of a folder holding another model's files, before the base loads.
      await checkMergedModelFolder(opts.out, [opts.base, opts.adapter]);
      await openDevice();
      const trust = tokenizerTrustFlag(opts);
      const base = await loadBaseModel(opts.base, undefined, { quantize, quantizeThreads, dtype: baseDtypeOption(opts.baseDtype), ...trust });
      if (quantize !== 'none') say(`the base is loaded ${quantize}-quantized: each merged weight is dequantized, merged in f32 and written as f16`);
      // An adapter with its own vocabulary brings its tokenizer, which the merged folder gets.
      const tokenizerDir = (await loadAdapterWithTokenizer(base, opts.adapter, trust)) ?? opts.base;
      mergeAdapter(base.model);
      const result = await saveMergedModel(base.model, opts.out, { maxShardBytes: Number(opts.maxShardSize), tokenizerDir });
      say(`wrote ${opts.out} (${JSON.stringify(result).slice(0, 200)})`);
    });
}

/** The `eval` subcommand. */
export function buildEvalCommand(): Command {
  return withContextFlags(withBaseFlags(new Command('eval').description('validation loss and perplexity of a base model (and adapter) on a data file, with the training prompt and masking')))
    .option('--data <file>', 'data file, JSON array, JSONL or Parquet of {instruction, input, output} (default: the built-in demo sample)')
    .option('--template <name>', 'prompt template name or file', DEFAULT_CONFIG.template)
    .option('--cutoff-len <n>', 'longest tokenized example', String(DEFAULT_CONFIG.cutoffLen))
    .option('--micro-batch <n>', 'examples per forward pass', '1')
    .option('--quantize <format>', QUANTIZE_HELP, 'none')
    .option('--quantize-threads <n>', QUANTIZE_THREADS_HELP)
    .action(async (opts: { base?: string; adapter?: string; data?: string; template: string; cutoffLen: string; microBatch: string; quantize?: string; quantizeThreads?: string; baseDtype: string; maxModelLen?: string; allowLongMaxModelLen?: boolean; trustTokenizerPatterns?: boolean }) => {
      const quantizeThreads = quantizeThreadsFlag(opts.quantizeThreads);
      const context = contextFlags(opts);
      const config = resolveConfig({ '--cutoff-len': opts.cutoffLen, '--micro-batch': opts.microBatch, '--template': opts.template, '--batch-size': opts.microBatch, '--quantize': opts.quantize ?? 'none' });
      await openDevice();
      const trust = tokenizerTrustFlag(opts);
      const base = await loadBaseModel(opts.base ?? null, undefined, { quantize: config.quantize, quantizeThreads, dtype: baseDtypeOption(opts.baseDtype), ...context, ...trust });
      checkContext(config.cutoffLen, base.model, base.name);
      if (opts.adapter) await loadAdapterWithTokenizer(base, opts.adapter, trust);
      const { records, file } = await loadRecords(opts.data ?? DEMO_DATA_PATH);
      const { examples } = tokenizeRecords(records, resolveTemplate(opts.template), textTokenizer(base.tokenizer), { cutoffLen: config.cutoffLen, trainOnInputs: false });
      checkMicroBatchFits(base.model, examples, config.microBatchSize as number, { file, flag: '--micro-batch', shuffled: false });
      const loss = await evaluate(new LoraModel(base.model, base.name), examples, config, config.microBatchSize as number);
      say(`${file}: ${examples.length} records, loss ${loss.toFixed(4)}, perplexity ${Math.exp(loss).toFixed(3)} (base weights ${base.model.dtype})`);
    });
}
