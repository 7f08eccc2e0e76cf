// Beam search as transformers 4.28 runs it: the best 2 x beams candidates per step, finished
// hypotheses ranked by length-penalized score, early stop once no beam can beat the worst kept.

import { checkFits, Output, stepLogits } from './decode-step.js';
import type { Generation, Resolved } from './generate-options.js';
import { KvCache } from '../model/kv-cache.js';
import type { LlamaModel } from '../model/model.js';
import { applyRepetitionPenalty, logSoftmaxRow, topIndices } from './sampling.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

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

/** Beam search for one prompt as transformers 4.28 runs it (no sampling); `index` names the prompt in streamed events. */
export async function beamSearch(model: LlamaModel, tokenizer: Tokenizer | null, prompt: number[], index: number, r: Resolved): Promise<Generation> {
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
  return out.result();
}
