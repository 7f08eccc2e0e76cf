// Text generation with a KV cache, as Hugging Face's `generate`: greedy decoding and sampling (the
// penalties and the picks on the GPU, one step ahead: pipelined.ts), beam search
// (beam-search.ts), stop strings, streaming, batched prompts, and the prompts scored from the prompt step.

import { argmax, copyInto, countTokens, frequencyPresencePenalty, logitBias, logitBiasRow, logSoftmaxAtMax, logSoftmaxTopK, markSeen, readyAttention, refLogSoftmaxTopK, refSampledLogprob, repetitionPenalty, sampleLogitsWithLogprobs, seenMask, tensor, toArray, tokenCounts, unpackLogprobs, zeros, type MarkInput, type RowLogprobs, type SampleOptions, type Tensor } from '@huatuo/tensor';
import { beamSearch } from './beam-search.js';
import { CumulativeLogprobs } from './cumulative-logprob.js';
import { checkFits, Output, step, type Picker } from './decode-step.js';
import { decodePipelined, decodePipelinedEnabled, hostPicksEnabled } from './pipelined.js';
import { sharedPrompt } from './shared-prompt.js';
import { queuePromptLogprobs, type PromptTokenLogprobs } from './prompt-logprobs.js';
import { ModelError } from '../errors.js';
import { resolveOptions, type GenerateOptions, type Generation, type Resolved } from './generate-options.js';
import { KvCache } from '../model/kv-cache.js';
import type { LlamaModel } from '../model/model.js';
import { applyFrequencyPresencePenalty, applyLogitBias, applyRepetitionPenalty, logSoftmaxRow, sampleToken, tokenUniforms, topIndices } from './sampling.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** Row b's k-th uniform at [k * B + b]: row b's generator is the first fork of seeds[b]'s, as a prompt alone with that seed. */
function rowSeedUniforms(seeds: readonly number[], K: number): Float32Array {
  const B = seeds.length;
  const u = new Float32Array(K * B);
  seeds.forEach((s, b) => tokenUniforms(s, 1, K).forEach((v, k) => (u[k * B + b] = v)));
  return u;
}

/**
 * The log-probability of `token` under the distribution picked from, in float64: the scores' log-softmax
 * (greedy), or with the sampling warpers the log of its share of their probabilities (-Infinity where they dropped it).
 */
function pickedLogprob(scores: Float64Array, token: number, warpers: SampleOptions | null): number {
  return warpers === null ? logSoftmaxRow(scores)[token]! : refSampledLogprob(scores, warpers, token);
}

async function greedyOrSample(model: LlamaModel, tokenizer: Tokenizer | null, prompts: number[][], r: Resolved, seed: number | readonly number[]): Promise<Generation[]> {
  const B = prompts.length;
  const P = Math.max(...prompts.map((p) => p.length));
  const maxLen = P + r.maxNewTokens;
  checkFits(model, B, maxLen);
  const pad = model.config.padTokenId ?? 0;
  const outputs = prompts.map((p, i) => new Output(i, p, tokenizer, r));
  // Row b's k-th new token draws with uniforms[k * B + b], on every path.
  const uniforms = !r.doSample ? null : typeof seed === 'number' ? tokenUniforms(seed, B, r.maxNewTokens) : rowSeedUniforms(seed, r.maxNewTokens);
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
  // Decode step k >= 1 feeds each row's k-th new token at position L_b + k - 1 and sees S = P + k keys.
  const inputsAt = (k: number) => {
    const S = P + k;
    for (let b = 0; b < B; b++) mask[b * maxLen + S - 1] = 1;
    return { S, mask: maskRows(S), positions: prompts.map((p) => [p.length + k - 1]) };
  };
  const cache = new KvCache(model.config, B, maxLen, model.dtype);
  // The scores need not reach the host: the GPU applies the penalties (each row's seen tokens in a mask,
  // and its generated tokens' counts, both updated with its picks) and picks the k-th new tokens (argmax
  // is the first maximum, as topIndices; sampleLogits is sampleToken in f32). vLLM's order:
  // logit_bias, the repetition penalty, then frequency, then presence, all before temperature, top-k and top-p.
  const V = model.config.vocabSize;
  const onDevice = !hostPicksEnabled();
  // With cumulativeLogprob, the sums of the picks' log-probabilities under the distributions drawn from: on the
  // GPU beside GPU picks (cumulative-logprob.ts), else in float64 on the host.
  const cumulative = new Float64Array(B);
  const summed = onDevice && r.cumulativeLogprob ? new CumulativeLogprobs(outputs) : null;
  const seen = onDevice && r.repetitionPenalty !== 1 ? seenMask(prompts, V) : null;
  const counts = onDevice && (r.frequencyPenalty !== 0 || r.presencePenalty !== 0) ? tokenCounts(prompts.map(() => []), V) : null;
  // vLLM adds logit_bias first, before the penalties.
  const biasRow = onDevice && r.logitBias.size > 0 ? logitBiasRow(r.logitBias, V) : null;
  // With logprobs, step k's raw logits give its picks' log-probabilities and top tokens, k + 1 pairs a row
  // written in place into one buffer [B, K + 1, 2] (so that a recorded step replays it too), whose readback
  // (logprobReads[k]) is submitted once the step is, before the next step overwrites it.
  const K = r.logprobs;
  const packedLogprobs = onDevice && K !== null ? zeros([B, K + 1, 2], { dtype: 'u32' }) : null;
  const logprobReads = new Map<number, Promise<Uint32Array>>();
  const readLogprobs = (k: number): void => {
    const read = toArray(packedLogprobs!) as Promise<Uint32Array>;
    // Awaited when step k's tokens are taken; the step queued after the last is dropped unread.
    read.catch(() => undefined);
    logprobReads.set(k, read);
  };
  const logprobsAt = async (k: number): Promise<RowLogprobs[] | null> => {
    const read = logprobReads.get(k);
    logprobReads.delete(k);
    return read === undefined ? null : unpackLogprobs(await read, K!);
  };
  const pickAt = (k: number): Picker => {
    const drawn = uniforms?.subarray(k * B, (k + 1) * B) ?? null;
    const active = summed?.activeRows() ?? null;
    return {
      inputs: { ...(drawn === null ? {} : { uniforms: drawn }), ...(active === null ? {} : { active }) },
      ...(packedLogprobs === null ? {} : { queued: () => readLogprobs(k) }),
      pick: (logits: Tensor, input: MarkInput) => {
        let scores = biasRow === null ? logits : logitBias(logits, biasRow);
        if (seen !== null) scores = repetitionPenalty(scores, seen, r.repetitionPenalty);
        if (counts !== null) scores = frequencyPresencePenalty(scores, counts, r.frequencyPenalty, r.presencePenalty);
        let ids: Tensor;
        if (drawn === null) {
          ids = argmax(scores, 1);
          if (active !== null) summed!.add(logSoftmaxAtMax(scores), active, input);
        } else {
          const picked = sampleLogitsWithLogprobs(scores, input('uniforms', tensor(drawn, [B])), r);
          ids = picked.ids;
          if (active !== null) summed!.add(picked.logprobs, active, input);
        }
        if (seen !== null) markSeen(seen, ids, V);
        if (counts !== null) countTokens(counts, ids);
        if (packedLogprobs !== null) copyInto(packedLogprobs, logSoftmaxTopK(logits, ids, K!));
        return ids;
      },
    };
  };
  // Rows that repeat a prompt share its prompt step (shared-prompt.ts): its hidden states hold the distinct prompts only.
  const shared = sharedPrompt(prompts, P) ?? undefined;
  // With promptLogprobs, the prompt step's hidden states also score each distinct prompt (the n choices of
  // one prompt once): row `scoredRow[b]` holds the first prompt equal to row b's.
  const PK = r.promptLogprobs;
  const scoredRow = prompts.map((p, b) => prompts.findIndex((q, j) => j === b || (q.length === p.length && q.every((t, i) => t === p[i]))));
  const promptReads: (Promise<(PromptTokenLogprobs | null)[]> | null)[] = [];
  const scorePrompts =
    PK === null
      ? undefined
      : (hidden: Tensor) =>
          scoredRow.forEach((row, b) => {
            const hiddenRow = shared === undefined ? b : shared.rows.indexOf(b);
            const read = row === b ? queuePromptLogprobs(model, hidden, hiddenRow, prompts[b]!, PK, r.promptRanks) : null;
            // Awaited after the step; a step that fails first leaves it unread.
            read?.catch(() => {});
            promptReads.push(read);
          });
  const scored: (PromptTokenLogprobs | null)[][] = [];
  const results = async () => {
    if (summed !== null) cumulative.set(await summed.read());
    return outputs.map((o, b) => ({
      ...o.result(),
      ...(K === null ? {} : { logprobs: o.logprobs }),
      ...(r.cumulativeLogprob ? { cumulativeLogprob: cumulative[b]! } : {}),
      ...(PK === null ? {} : { promptLogprobs: scored[b]! }),
    }));
  };
  try {
    // The prompt step that scores the prompts runs alone: its scores are read back before the first token.
    if (onDevice && PK === null && model.embedParts.length === 1 && decodePipelinedEnabled()) {
      await decodePipelined(model, outputs, { ids, S: P, mask: maskRows(P), positions, shared }, inputsAt, cache, r.maxNewTokens, pickAt, K === null ? undefined : logprobsAt);
      return await results();
    }
    let res = await step(model, ids, maskRows(P), B, P, positions, cache, onDevice ? pickAt(0) : null, scorePrompts, shared);
    if (PK !== null) {
      const rows = await Promise.all(promptReads);
      for (const row of scoredRow) scored.push(rows[row]!);
      scored.forEach((lp, b) => r.onPromptLogprobs?.({ prompt: b, logprobs: lp }));
    }
    for (let k = 1; ; k++) {
      const next: number[] = [];
      const stepLogprobs = await logprobsAt(k - 1);
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
          applyLogitBias(scores, r.logitBias);
          applyRepetitionPenalty(scores, [...prompts[b]!, ...out.tokens], r.repetitionPenalty);
          applyFrequencyPresencePenalty(scores, out.tokens, r.frequencyPenalty, r.presencePenalty);
          token = uniforms !== null ? sampleToken(scores, r, uniforms[out.tokens.length * B + b]!) : topIndices(scores, 1)[0]!;
          if (r.cumulativeLogprob) cumulative[b] = cumulative[b]! + pickedLogprob(scores, token, uniforms === null ? null : r);
        }
        let row: RowLogprobs | undefined;
        if (K !== null) {
          // Host picks: the float64 reference over the row read back.
          row = stepLogprobs?.[b] ?? refLogSoftmaxTopK({ shape: [1, V], data: (res as { rows: Float32Array[] }).rows[b]! }, [token], K)[0]!;
        }
        out.push(token, row);
        next.push(token);
      }
      if (outputs.every((o) => o.finishReason !== null)) break;
      const x = inputsAt(k);
      res = await step(
        model,
        next.map((t) => [t]),
        x.mask,
        B,
        x.S,
        x.positions,
        cache,
        onDevice ? pickAt(k) : null,
      );
    }
    return await results();
  } finally {
    cache.dispose();
    summed?.dispose();
    packedLogprobs?.dispose();
    seen?.dispose();
    counts?.dispose();
    biasRow?.dispose();
  }
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
  const r = resolveOptions(model, options);
  const list: readonly (string | readonly number[])[] = typeof prompts === 'string' ? [prompts] : prompts;
  if (list.length === 0) throw new ModelError('generate: no prompts given');
  const ids = list.map((p, i) => {
    if (typeof p === 'string') {
      if (tokenizer === null) throw new ModelError(`generate: prompt ${i} is text but no tokenizer was given; pass one or give token ids`);
      return options.addBos === undefined ? tokenizer.encode(p) : tokenizer.encode(p, { addBos: options.addBos });
    }
    const V = model.config.vocabSize;
    if (p.length === 0 || p.some((t) => !Number.isInteger(t) || t < 0 || t >= V)) {
      throw new ModelError(`generate: prompt ${i} should be a non-empty list of token ids in [0, ${V}), got [${p.slice(0, 8).join(', ')}${p.length > 8 ? ', ...' : ''}]`);
    }
    return [...p];
  });
  if (options.seeds !== undefined) {
    if (options.seeds.length !== ids.length) throw new ModelError(`generate: seeds has ${options.seeds.length} seeds for ${ids.length} prompts; give one per prompt`);
    if (options.seeds.some((s) => !Number.isInteger(s))) throw new ModelError(`generate: seeds should be integers, got [${options.seeds.slice(0, 8).join(', ')}]`);
    if (options.seed !== undefined) throw new ModelError('generate: give seed or seeds, not both');
  }
  const longest = Math.max(...ids.map((p) => p.length)) + r.maxNewTokens;
  if (longest > model.maxModelLen) {
    throw new ModelError(
      `generate: prompts plus maxNewTokens reach ${longest} tokens, beyond the model's context of ${model.maxModelLen} tokens (${model.maxModelLenSource}); ` +
        'shorten the prompt or lower maxNewTokens (a longer context is set with model.setMaxModelLen, --max-model-len)',
    );
  }
  // The attention kernels of the prompt and of decoding are created (or refused) before the first step,
  // so that every generation runs the same ones whatever the compile timing.
  await readyAttention({ headDim: model.config.headDim, dtypes: [model.dtype], decode: true });
  const wasTraining = model.training;
  model.training = false;
  try {
    if (r.numBeams === 1) return await greedyOrSample(model, tokenizer, ids, r, options.seeds ?? options.seed ?? 0);
    const out: Generation[] = [];
    for (const [i, p] of ids.entries()) out.push(await beamSearch(model, tokenizer, p, i, r));
    return out;
  } finally {
    model.training = wasTraining;
  }
}
