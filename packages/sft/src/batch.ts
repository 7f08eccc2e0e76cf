// From records to training micro-batches, as alpaca-lora's finetune.py does it: prompt +
// answer tokenized as the tokenizer's own call does (LLaMA's: BOS first) and cut to cutoffLen,
// EOS if room is left, labels -100 on the prompt, then DataCollatorForSeq2Seq padding (left
// side, to a multiple of 8, labels -100, mask 0).

import type { Tokenizer } from '@huatuo/llama';
import type { LoadedRecord, QaRecord, RecordLocation } from './data.js';
import { describeLocation } from './data.js';
import { generatePrompt, type PromptTemplate } from './prompt.js';
import { Pcg64 } from './rng.js';

/** The label that cross-entropy ignores (PyTorch's ignore_index). */
export const IGNORE_INDEX = -100;

/**
 * What batching needs from a tokenizer. `encode` must not truncate; when not told, it adds BOS
 * and EOS as the tokenizer's defaults say (tokenizer_config.json's add_bos_token and
 * add_eos_token; LLaMA's: BOS only; Qwen2's: neither), as a Hugging Face tokenizer called on text does.
 */
export interface TextTokenizer {
  encode(text: string, options?: { addBos?: boolean; addEos?: boolean }): number[];
  /** Needed only when `encode` puts BOS first by default; a tokenizer without BOS (Qwen2's) leaves it out. */
  bosId?: number;
  eosId: number;
  padId: number;
}

/** The {@link TextTokenizer} of a model's tokenizer, padding with id 0 as alpaca-lora sets tokenizer.pad_token_id. */
export function textTokenizer(tokenizer: Tokenizer): TextTokenizer {
  return { encode: (text, options) => tokenizer.encode(text, options), bosId: tokenizer.hasBos ? tokenizer.bosId : undefined, eosId: tokenizer.eosId, padId: 0 };
}

/** Options of {@link tokenizeRecord}; the recipe's values are in DEFAULT_CONFIG. */
export interface TokenizeOptions {
  /** Longest sequence kept, BOS and EOS included (256). */
  cutoffLen: number;
  /** Compute the loss on prompt tokens too (false: labels -100 on the prompt). */
  trainOnInputs: boolean;
}

/** One tokenized training example. */
export interface TokenizedExample {
  /** Prompt + answer as the tokenizer encodes them (LLaMA's: BOS first), at most cutoffLen ids, EOS last when it fit. */
  inputIds: number[];
  /** `inputIds` with IGNORE_INDEX over the prompt (unless trainOnInputs). */
  labels: number[];
  /** Tokens of the prompt alone encoded the same way, capped at cutoffLen (alpaca-lora's user_prompt_len). */
  promptLength: number;
  /** Tokens of prompt + answer as the tokenizer encodes them, before truncation and the appended EOS. */
  fullLength: number;
  /** Whether EOS was appended (only when the sequence is shorter than cutoffLen and does not already end with EOS). */
  eosAppended: boolean;
}

/** A record that was kept but changed, with why. */
export interface DataWarning {
  location: RecordLocation | null;
  message: string;
}

/** Whether `tokenizer.encode(text)` puts BOS first and EOS last when not told (LLaMA's: BOS only). */
function specialTokenDefaults(tokenizer: TextTokenizer): { bos: boolean; eos: boolean } {
  return { bos: tokenizer.encode('', { addEos: false }).length > 0, eos: tokenizer.encode('', { addBos: false }).length > 0 };
}

/**
 * The ids of Hugging Face's `tokenizer(text, truncation=True, max_length=maxLength)` given the text's
 * ids alone: they are cut to leave room for the BOS and EOS the tokenizer adds, which then go around them.
 */
function truncateWithSpecialTokens(tokenizer: TextTokenizer, textIds: readonly number[], maxLength: number): number[] {
  const { bos, eos } = specialTokenDefaults(tokenizer);
  if (bos && tokenizer.bosId === undefined) throw new Error("the TextTokenizer's encode puts a token first by default (BOS) but it has no bosId; give bosId");
  const kept = textIds.slice(0, Math.max(0, maxLength - Number(bos) - Number(eos)));
  return [...(bos ? [tokenizer.bosId as number] : []), ...kept, ...(eos ? [tokenizer.eosId] : [])];
}

/**
 * alpaca-lora's `tokenize(prompt, add_eos_token)`: the text as `tokenizer(text, truncation=True,
 * max_length=cutoffLen)` encodes it (BOS and EOS as the tokenizer adds them), then EOS if the last
 * id is not EOS and the sequence is shorter than cutoffLen.
 * @example tokenizeText(tok, 'the', 256, true) // [1, 278, 2] with LLaMA's vocabulary
 */
export function tokenizeText(tokenizer: TextTokenizer, text: string, cutoffLen: number, addEosToken: boolean): number[] {
  const ids = truncateWithSpecialTokens(tokenizer, tokenizer.encode(text, { addBos: false, addEos: false }), cutoffLen);
  if (addEosToken && ids.length < cutoffLen && ids[ids.length - 1] !== tokenizer.eosId) ids.push(tokenizer.eosId);
  return ids;
}

/**
 * alpaca-lora's `generate_and_tokenize_prompt`: the filled template with the answer
 * appended, tokenized; with trainOnInputs false, the first `promptLength` labels are -100,
 * where `promptLength` counts the prompt alone tokenized the same way (without EOS).
 * @example tokenizeRecord({ instruction: '头痛怎么办？', input: '', output: '多喝水。' }, MED_TEMPLATE, tok, { cutoffLen: 256, trainOnInputs: false })
 */
export function tokenizeRecord(record: QaRecord, template: PromptTemplate, tokenizer: TextTokenizer, options: TokenizeOptions): TokenizedExample {
  const { cutoffLen, trainOnInputs } = options;
  const fullPrompt = generatePrompt(template, record.instruction, record.input, record.output);
  const fullText = tokenizer.encode(fullPrompt, { addBos: false, addEos: false });
  // tokenizeText(tokenizer, fullPrompt, cutoffLen, true), reusing the untruncated ids.
  const inputIds = truncateWithSpecialTokens(tokenizer, fullText, cutoffLen);
  const { bos, eos } = specialTokenDefaults(tokenizer);
  const fullLength = Number(bos) + fullText.length + Number(eos);
  const eosAppended = inputIds.length < cutoffLen && inputIds[inputIds.length - 1] !== tokenizer.eosId;
  if (eosAppended) inputIds.push(tokenizer.eosId);
  let labels = inputIds.slice();
  const promptLength = tokenizeText(tokenizer, generatePrompt(template, record.instruction, record.input), cutoffLen, false).length;
  if (!trainOnInputs) {
    if (promptLength > inputIds.length) {
      throw new Error(
        `internal: the prompt alone is ${promptLength} tokens but prompt + answer only ${inputIds.length}; the tokenizer must tokenize the prompt as a prefix`,
      );
    }
    labels = [...new Array<number>(promptLength).fill(IGNORE_INDEX), ...labels.slice(promptLength)];
  }
  return { inputIds, labels, promptLength, fullLength, eosAppended };
}

/**
 * Tokenizes every record, reporting (not rejecting) those whose answer does not fit:
 * like alpaca-lora, an over-long sequence keeps its first cutoffLen tokens and gets no EOS.
 */
export function tokenizeRecords(
  records: readonly (QaRecord | LoadedRecord)[],
  template: PromptTemplate,
  tokenizer: TextTokenizer,
  options: TokenizeOptions,
): { examples: TokenizedExample[]; warnings: DataWarning[] } {
  const examples: TokenizedExample[] = [];
  const warnings: DataWarning[] = [];
  records.forEach((record, i) => {
    const ex = tokenizeRecord(record, template, tokenizer, options);
    examples.push(ex);
    const location = 'location' in record ? record.location : null;
    const where = location ? describeLocation(location) : `record ${i + 1}`;
    if (ex.promptLength >= options.cutoffLen) {
      warnings.push({
        location,
        message: `${where}: the prompt alone is ${ex.promptLength} tokens, not under cutoffLen ${options.cutoffLen}; no answer token is kept, so the record adds no loss`,
      });
    } else if (ex.fullLength > options.cutoffLen) {
      const eos = ex.inputIds[ex.inputIds.length - 1] === tokenizer.eosId ? 'keeps the EOS the tokenizer adds' : 'gets no EOS';
      warnings.push({
        location,
        message: `${where}: prompt + answer is ${ex.fullLength} tokens, over cutoffLen ${options.cutoffLen}; the answer is truncated to its first ${options.cutoffLen - ex.promptLength} tokens and ${eos} (as alpaca-lora truncates); raise --cutoff-len to keep it whole`,
      });
    } else if (ex.inputIds[ex.inputIds.length - 1] !== tokenizer.eosId) {
      warnings.push({
        location,
        message: `${where}: prompt + answer is exactly cutoffLen ${options.cutoffLen} tokens, leaving no room for EOS; trained without EOS (as alpaca-lora does)`,
      });
    }
  });
  return { examples, warnings };
}

/** A padded micro-batch, row-major. */
export interface Batch {
  /** [B, T] token ids, padId on padding. */
  inputIds: Int32Array;
  /** [B, T] target ids, IGNORE_INDEX on the prompt and on padding. */
  labels: Int32Array;
  /** [B, T] 1 on tokens, 0 on padding. */
  attentionMask: Int32Array;
  batchSize: number;
  seqLen: number;
}

/** Options of {@link collate}. */
export interface CollateOptions {
  padId: number;
  /** T is the longest example rounded up to a multiple of this (8). */
  padToMultipleOf: number;
  /** alpaca-lora sets `tokenizer.padding_side = "left"`. */
  paddingSide: 'left' | 'right';
}

/**
 * DataCollatorForSeq2Seq with `pad_to_multiple_of`: pads every example to T = the longest
 * length rounded up to a multiple, ids with padId, labels with -100, mask with 0.
 * @example collate(examples, { padId: 0, padToMultipleOf: 8, paddingSide: 'left' }).seqLen % 8 === 0
 */
export function collate(examples: readonly TokenizedExample[], options: CollateOptions): Batch {
  if (examples.length === 0) throw new RangeError('collate: no examples; a micro-batch needs at least one');
  const m = options.padToMultipleOf;
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`collate: padToMultipleOf must be a positive integer, got ${m}`);
  const longest = Math.max(...examples.map((e) => e.inputIds.length));
  const T = Math.ceil(longest / m) * m;
  const B = examples.length;
  const inputIds = new Int32Array(B * T).fill(options.padId); // [B, T]
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX); // [B, T]
  const attentionMask = new Int32Array(B * T); // [B, T]
  examples.forEach((ex, b) => {
    if (ex.labels.length !== ex.inputIds.length) {
      throw new Error(`internal: example ${b} has ${ex.inputIds.length} ids but ${ex.labels.length} labels`);
    }
    const start = b * T + (options.paddingSide === 'left' ? T - ex.inputIds.length : 0);
    inputIds.set(ex.inputIds, start);
    labels.set(ex.labels, start);
    attentionMask.fill(1, start, start + ex.inputIds.length);
  });
  return { inputIds, labels, attentionMask, batchSize: B, seqLen: T };
}

/**
 * Splits a visiting order into micro-batches of `microBatchSize` (the last may be shorter,
 * as a PyTorch DataLoader without drop_last leaves it).
 */
export function chunkOrder(order: readonly number[], microBatchSize: number): number[][] {
  if (!Number.isInteger(microBatchSize) || microBatchSize < 1) throw new RangeError(`microBatchSize must be a positive integer, got ${microBatchSize}`);
  const out: number[][] = [];
  for (let i = 0; i < order.length; i += microBatchSize) out.push(order.slice(i, i + microBatchSize));
  return out;
}

/**
 * The order in which epoch `epoch` visits `n` training examples: a NumPy-style permutation
 * seeded by [seed, epoch], so a resumed run sees the same order. (The Hugging Face Trainer
 * draws its order from PyTorch's generator, which this does not reproduce.)
 */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return new Pcg64([seed, epoch]).permutation(n);
}
