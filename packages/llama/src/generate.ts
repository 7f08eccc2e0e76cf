// Text generation with a KV cache, following Hugging Face's `generate`: greedy decoding,
// sampling (temperature, top-k, top-p), repetition penalty, beam search (transformers 4.28
// semantics), max new tokens, end-of-sequence ids and stop strings, streaming, batched prompts.
// Greedy decoding without a repetition penalty picks each token on the GPU (argmax) and reads back only
// the ids; otherwise scores are processed on the host in float64 from each step's f32 logits.

import { argmax, deviceInfo, Generator, noGrad, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { ModelError } from './errors.js';
import { KvCache } from './kv-cache.js';
import { checkMemoryPlan, planMemory } from './memory.js';
import type { LlamaModel } from './model.js';
import type { Tokenizer } from './tokenizer.js';

/** A token as it is generated (streaming). */
export interface TokenEvent {
  /** Index of the prompt it continues. */
  readonly prompt: number;
  readonly token: number;
  /** Text this token completes (may be empty while a UTF-8 character is incomplete). */
  readonly text: string;
}

/** Options of {@link generate}; defaults are Hugging Face's. */
export interface GenerateOptions {
  /** Most tokens to add per prompt. Default 128. */
  readonly maxNewTokens?: number;
  /** Sample instead of taking the most likely token (greedy) or beams. Default false. */
  readonly doSample?: boolean;
  /** Sampling temperature (sampling only). Default 1. */
  readonly temperature?: number;
  /** Keep the k most likely tokens (sampling only; 0 disables). Default 50. */
  readonly topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (sampling only). Default 1. */
  readonly topP?: number;
  /** Divides positive and multiplies negative scores of tokens already in the sequence (> 1 discourages repeats). Default 1. */
  readonly repetitionPenalty?: number;
  /** Beams per prompt; above 1 runs beam search (deterministic, as HF without doSample). Default 1. */
  readonly numBeams?: number;
  /** Beam hypotheses' scores are divided by length ** lengthPenalty. Default 1. */
  readonly lengthPenalty?: number;
  /** Ids that end a sequence. Default the config's eos_token_id(s). */
  readonly eosTokenIds?: readonly number[];
  /** Strings that end a sequence once the generated text contains one (it is cut before it). */
  readonly stopStrings?: readonly string[];
  /** Seed of sampling. Default 0. */
  readonly seed?: number;
  /** Put BOS before text prompts. Default true. */
  readonly addBos?: boolean;
  /**
   * Called with each new token (greedy and sampling: as generated; beam search: the chosen
   * beam's tokens once it is done).
   */
  readonly onToken?: (event: TokenEvent) => void;
}

/** What one prompt produced. */
export interface Generation {
  /** The prompt's token ids. */
  readonly promptTokens: readonly number[];
  /** New token ids (the end-of-sequence id included when it ended the sequence). */
  readonly tokens: readonly number[];
  /** Text of the new tokens without special tokens, cut before a stop string. */
  readonly text: string;
  readonly finishReason: 'eos' | 'stop' | 'length';
}

interface Resolved {
  maxNewTokens: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  numBeams: number;
  lengthPenalty: number;
  eos: Set<number>;
  stopStrings: readonly string[];
  onToken: ((event: TokenEvent) => void) | undefined;
}

function resolve(model: LlamaModel, o: GenerateOptions): Resolved {
  const r: Resolved = {
    maxNewTokens: o.maxNewTokens ?? 128,
    doSample: o.doSample ?? false,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 50,
    topP: o.topP ?? 1,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    numBeams: o.numBeams ?? 1,
    lengthPenalty: o.lengthPenalty ?? 1,
    eos: new Set(o.eosTokenIds ?? model.config.eosTokenIds),
    stopStrings: o.stopStrings ?? [],
    onToken: o.onToken,
  };
  const positiveInt = (k: string, v: number) => {
    if (!Number.isSafeInteger(v) || v <= 0) throw new ModelError(`generate: ${k} should be a positive integer, got ${v}`);
  };
  positiveInt('maxNewTokens', r.maxNewTokens);
  positiveInt('numBeams', r.numBeams);
  if (!(r.temperature > 0)) throw new ModelError(`generate: temperature should be above 0, got ${r.temperature}; use doSample: false for greedy decoding`);
  if (!Number.isSafeInteger(r.topK) || r.topK < 0) throw new ModelError(`generate: topK should be a non-negative integer, got ${r.topK}`);
  if (!(r.topP > 0 && r.topP <= 1)) throw new ModelError(`generate: topP should be in (0, 1], got ${r.topP}`);
  if (!(r.repetitionPenalty > 0)) throw new ModelError(`generate: repetitionPenalty should be above 0, got ${r.repetitionPenalty}`);
  if (r.numBeams > 1 && r.doSample) throw new ModelError('generate: beam sampling is not supported; use numBeams 1 with doSample, or doSample false with beams');
  return r;
}

/** HF's RepetitionPenaltyLogitsProcessor: scores of tokens in `seen` shrink (in place). */
export function applyRepetitionPenalty(scores: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const s = scores[t]!;
    scores[t] = s < 0 ? s * penalty : s / penalty;
  }
}

/** Log-softmax of a row, in float64. */
export function logSoftmaxRow(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]!);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return out;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (top.length === k && v <= values[top[k - 1]!]!) continue;
    let j = top.length < k ? top.length : k - 1;
    if (top.length < k) top.push(i);
    while (j > 0 && values[top[j - 1]!]! < v) {
      top[j] = top[j - 1]!;
      j--;
    }
    top[j] = i;
  }
  return top;
}

/**
 * HF's sampling warpers in their order (temperature, top-k, top-p) and a draw from the
 * resulting distribution. Filtered tokens get probability 0; top-k keeps ties with the k-th.
 */
export function sampleToken(scores: Float64Array, o: { temperature: number; topK: number; topP: number }, uniform: number): number {
  const V = scores.length;
  const s = Float64Array.from(scores, (x) => x / o.temperature);
  if (o.topK > 0 && o.topK < V) {
    const kth = s[topIndices(s, o.topK)[o.topK - 1]!]!;
    for (let i = 0; i < V; i++) if (s[i]! < kth) s[i] = -Infinity;
  }
  const p = Float64Array.from(logSoftmaxRow(s), Math.exp);
  if (o.topP < 1) {
    // Sorted ascending, drop tokens while the cumulative probability stays <= 1 - topP; keep the top one.
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[a]! - p[b]! || b - a);
    let cum = 0;
    for (let r = 0; r < V - 1; r++) {
      cum += p[order[r]!]!;
      if (cum <= 1 - o.topP) p[order[r]!] = 0;
      else break;
    }
  }
  let total = 0;
  for (let i = 0; i < V; i++) total += p[i]!;
  let u = uniform * total;
  let last = 0;
  for (let i = 0; i < V; i++) {
    if (p[i]! <= 0) continue;
    last = i;
    u -= p[i]!;
    if (u < 0) return i;
  }
  return last;
}

function idsTensor(rows: readonly (readonly number[])[]): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
}

/** Runs the model over new positions; the logits of each row's last position, [B, V] on the GPU. */
function stepForward(model: LlamaModel, ids: number[][], mask: Int32Array, B: number, S: number, positions: number[][], cache: KvCache): Tensor {
  return noGrad(() =>
    tidy(() =>
      model.forward(idsTensor(ids), {
        attentionMask: tensor(mask.slice(0, B * S), [B, S]),
        positions: idsTensor(positions),
        cache,
        lastOnly: true,
      }),
    ),
  );
}

/** One decoding step's result on the host: every row's logits, or (greedy on the GPU) only the picked ids. */
type StepResult = { rows: Float32Array[] } | { ids: Int32Array };

/** Logits of the last position of each row read back as [B][V], or, when `greedy`, their argmax ids [B]. */
async function step(model: LlamaModel, ids: number[][], mask: Int32Array, B: number, S: number, positions: number[][], cache: KvCache, greedy: boolean): Promise<StepResult> {
  const V = model.config.vocabSize;
  const logits = stepForward(model, ids, mask, B, S, positions, cache);
  try {
    if (greedy) {
      const picked = noGrad(() => tidy(() => argmax(logits.reshape([B, V]), 1)));
      try {
        return { ids: (await toArray(picked)) as Int32Array };
      } finally {
        picked.dispose();
      }
    }
    const host = (await toArray(logits)) as Float32Array;
    return { rows: Array.from({ length: B }, (_, b) => host.subarray(b * V, (b + 1) * V)) };
  } finally {
    logits.dispose();
  }
}

/** Logits of the last position of each row, [B][V], read back to the host. */
async function stepLogits(model: LlamaModel, ids: number[][], mask: Int32Array, B: number, S: number, positions: number[][], cache: KvCache): Promise<Float32Array[]> {
  const r = await step(model, ids, mask, B, S, positions, cache, false);
  return 'rows' in r ? r.rows : [];
}

function checkFits(model: LlamaModel, batch: number, length: number): void {
  const info = deviceInfo();
  if (info === null) throw new ModelError('generate: no WebGPU device yet: call `await initWebGPU()` first');
  const plan = planMemory(model.config, { batchSize: batch, seqLen: length, dtype: model.dtype, training: false, lastPositionLogits: true });
  checkMemoryPlan(plan, info, `generate (${batch} sequences of up to ${length} tokens)`);
}

class Output {
  tokens: number[] = [];
  text = '';
  finishReason: Generation['finishReason'] | null = null;
  private readonly decoder;

  constructor(
    readonly prompt: number,
    readonly promptTokens: readonly number[],
    private readonly tokenizer: Tokenizer | null,
    private readonly r: Resolved,
  ) {
    this.decoder = tokenizer?.createStreamDecoder({ skipSpecialTokens: true }) ?? null;
  }

  /** Adds a token, streams it, and settles the finish reason. */
  push(token: number): void {
    this.tokens.push(token);
    const piece = this.r.eos.has(token) || this.decoder === null ? '' : this.decoder.push(token);
    this.text += piece;
    this.r.onToken?.({ prompt: this.prompt, token, text: piece });
    if (this.r.eos.has(token)) this.finishReason = 'eos';
    else {
      const hit = this.r.stopStrings.map((s) => this.text.indexOf(s)).filter((i) => i >= 0);
      if (hit.length > 0) {
        this.text = this.text.slice(0, Math.min(...hit));
        this.finishReason = 'stop';
      }
    }
    if (this.finishReason === null && this.tokens.length >= this.r.maxNewTokens) this.finishReason = 'length';
  }

  result(): Generation {
    if (this.finishReason !== 'stop' && this.decoder !== null) this.text += this.decoder.flush();
    return { promptTokens: this.promptTokens, tokens: this.tokens, text: this.text, finishReason: this.finishReason ?? 'length' };
  }
}

async function greedyOrSample(model: LlamaModel, tokenizer: Tokenizer | null, prompts: number[][], r: Resolved, seed: number): Promise<Generation[]> {
  const B = prompts.length;
  const P = Math.max(...prompts.map((p) => p.length));
  const maxLen = P + r.maxNewTokens;
  checkFits(model, B, maxLen);
  const pad = model.config.padTokenId ?? 0;
  const outputs = prompts.map((p, i) => new Output(i, p, tokenizer, r));
  const gen = new Generator(seed >>> 0);
  // Left padding: row b's prompt fills positions [P - L_b, P); padding keys are masked.
  const mask = new Int32Array(B * maxLen);
  const maskRows = (S: number) => {
    const m = new Int32Array(B * S);
    for (let b = 0; b < B; b++) m.set(mask.subarray(b * maxLen, b * maxLen + S), b * S);
    return m;
  };
  const ids = prompts.map((p) => [...new Array<number>(P - p.length).fill(pad), ...p]);
  const positions = prompts.map((p) => Array.from({ length: P }, (_, j) => Math.max(0, j - (P - p.length))));
  prompts.forEach((p, b) => mask.fill(1, b * maxLen + P - p.length, b * maxLen + P));
  const cache = new KvCache(model.config, B, maxLen, model.dtype);
  // Greedy picks need no scores on the host: the GPU's argmax is the first maximum, as topIndices.
  const onDevice = !r.doSample && r.repetitionPenalty === 1;
  try {
    let res = await step(model, ids, maskRows(P), B, P, positions, cache, onDevice);
    for (let s = 0; ; s++) {
      const next: number[] = [];
      for (let b = 0; b < B; b++) {
        const out = outputs[b]!;
        if (out.finishReason !== null) {
          next.push(pad);
          continue;
        }
        let token: number;
        if ('ids' in res) token = res.ids[b]!;
        else {
          const scores = Float64Array.from(res.rows[b]!);
          applyRepetitionPenalty(scores, [...prompts[b]!, ...out.tokens], r.repetitionPenalty);
          token = r.doSample ? sampleToken(scores, r, gen.uniform()) : topIndices(scores, 1)[0]!;
        }
        out.push(token);
        next.push(token);
      }
      if (outputs.every((o) => o.finishReason !== null)) break;
      const S = P + s + 1;
      for (let b = 0; b < B; b++) mask[b * maxLen + S - 1] = 1;
      res = await step(
        model,
        next.map((t) => [t]),
        maskRows(S),
        B,
        S,
        prompts.map((p) => [p.length + s]),
        cache,
        onDevice,
      );
    }
  } finally {
    cache.dispose();
  }
  return outputs.map((o) => o.result());
}

/** Finished beam hypotheses of one prompt (transformers 4.28's BeamHypotheses). */
class BeamHypotheses {
  beams: { score: number; tokens: number[] }[] = [];
  worst = 1e9;

  constructor(
    readonly numBeams: number,
    readonly lengthPenalty: number,
  ) {}

  /** `length` counts the prompt, as transformers 4.28 does. */
  add(tokens: number[], sumLogprobs: number, length: number): void {
    const score = sumLogprobs / length ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worst) {
      this.beams.push({ score, tokens });
      if (this.beams.length > this.numBeams) {
        const ranked = this.beams.map((b, i) => [b.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        this.beams.splice(ranked[0]![1], 1);
        this.worst = ranked[1]![0];
      } else {
        this.worst = Math.min(score, this.worst);
      }
    }
  }

  isDone(bestSumLogprobs: number, curLen: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    return this.worst >= bestSumLogprobs / curLen ** this.lengthPenalty;
  }
}

async function beamSearch(model: LlamaModel, tokenizer: Tokenizer | null, prompt: number[], index: number, r: Resolved): Promise<Generation> {
  const nb = r.numBeams;
  const maxLen = prompt.length + r.maxNewTokens;
  checkFits(model, nb, maxLen);
  const V = model.config.vocabSize;
  const hyps = new BeamHypotheses(nb, r.lengthPenalty);
  let beams: number[][] = Array.from({ length: nb }, () => []); // new tokens of each beam
  let beamScores: number[] = Array.from({ length: nb }, (_, i) => (i === 0 ? 0 : -1e9));
  const mask = new Int32Array(nb * maxLen).fill(1);
  const cache = new KvCache(model.config, nb, maxLen, model.dtype);
  let done = false;
  try {
    const pos = Array.from({ length: prompt.length }, (_, j) => j);
    let rows = await stepLogits(model, beams.map(() => prompt), mask, nb, prompt.length, beams.map(() => pos), cache);
    for (let curLen = prompt.length; ; ) {
      // Scores of every (beam, token): running sum of log-probs; the best 2 * nb candidates.
      const candidates: { score: number; beam: number; token: number }[] = [];
      for (let b = 0; b < nb; b++) {
        const logp = logSoftmaxRow(rows[b]!);
        applyRepetitionPenalty(logp, [...prompt, ...beams[b]!], r.repetitionPenalty);
        for (const t of topIndices(logp, 2 * nb)) candidates.push({ score: logp[t]! + beamScores[b]!, beam: b, token: t });
      }
      candidates.sort((a, b) => b.score - a.score || a.beam * V + a.token - (b.beam * V + b.token));
      const top = candidates.slice(0, 2 * nb);
      const next: { score: number; beam: number; token: number }[] = [];
      for (const [rank, c] of top.entries()) {
        if (r.eos.has(c.token)) {
          if (rank >= nb) continue;
          hyps.add([...beams[c.beam]!], c.score, curLen);
        } else {
          next.push(c);
        }
        if (next.length === nb) break;
      }
      done = done || hyps.isDone(top[0]!.score, curLen);
      beams = next.map((c) => [...beams[c.beam]!, c.token]);
      beamScores = next.map((c) => c.score);
      curLen += 1;
      if (done || curLen >= maxLen) break;
      cache.reorder(next.map((c) => c.beam));
      rows = await stepLogits(
        model,
        next.map((c) => [c.token]),
        mask,
        nb,
        curLen,
        next.map(() => [curLen - 1]),
        cache,
      );
    }
  } finally {
    cache.dispose();
  }
  if (!done) beams.forEach((b, i) => hyps.add(b, beamScores[i]!, prompt.length + b.length));
  let best = hyps.beams[0]!;
  for (const h of hyps.beams) if (h.score >= best.score) best = h;
  const tokens = [...best.tokens];
  if (prompt.length + tokens.length < maxLen) tokens.push([...r.eos][0]!);
  const out = new Output(index, prompt, tokenizer, { ...r, maxNewTokens: Infinity });
  for (const t of tokens) {
    if (out.finishReason !== null) break;
    out.push(t);
  }
  if (out.finishReason === null) out.finishReason = 'length';
  return out.result();
}

/**
 * Generates continuations of one or more prompts (text, encoded with `tokenizer`, or token
 * ids). Greedy by default; `doSample` samples with temperature/top-k/top-p; `numBeams` > 1
 * runs beam search (HuaTuo's inference: 4 beams). Refuses up front, with the memory estimate,
 * a batch that cannot fit the adapter.
 *
 * @example
 * const [out] = await generate(model, tokenizer, '问题：感冒了怎么办？\n回答：', { maxNewTokens: 64, numBeams: 4 });
 * out.text;
 */
export async function generate(
  model: LlamaModel,
  tokenizer: Tokenizer | null,
  prompts: string | readonly string[] | readonly (readonly number[])[],
  options: GenerateOptions = {},
): Promise<Generation[]> {
  const r = resolve(model, options);
  const list: readonly (string | readonly number[])[] = typeof prompts === 'string' ? [prompts] : prompts;
  if (list.length === 0) throw new ModelError('generate: no prompts given');
  const ids = list.map((p, i) => {
    if (typeof p === 'string') {
      if (tokenizer === null) throw new ModelError(`generate: prompt ${i} is text but no tokenizer was given; pass one or give token ids`);
      return tokenizer.encode(p, { addBos: options.addBos ?? true });
    }
    const V = model.config.vocabSize;
    if (p.length === 0 || p.some((t) => !Number.isInteger(t) || t < 0 || t >= V)) {
      throw new ModelError(`generate: prompt ${i} should be a non-empty list of token ids in [0, ${V}), got [${p.slice(0, 8).join(', ')}${p.length > 8 ? ', ...' : ''}]`);
    }
    return [...p];
  });
  const longest = Math.max(...ids.map((p) => p.length)) + r.maxNewTokens;
  if (longest > model.config.maxPositionEmbeddings) {
    throw new ModelError(`generate: prompts plus maxNewTokens reach ${longest} tokens, beyond the model's max_position_embeddings ${model.config.maxPositionEmbeddings}; shorten the prompt or lower maxNewTokens`);
  }
  const wasTraining = model.training;
  model.training = false;
  try {
    if (r.numBeams === 1) return await greedyOrSample(model, tokenizer, ids, r, options.seed ?? 0);
    const out: Generation[] = [];
    for (const [i, p] of ids.entries()) out.push(await beamSearch(model, tokenizer, p, i, r));
    return out;
  } finally {
    model.training = wasTraining;
  }
}
