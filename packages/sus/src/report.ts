// Scoring: the paper's Table 4 (mean per model and dimension) with SD, n and a seeded
// cluster bootstrap over questions, paired model comparisons (sign-flip permutation and
// Wilcoxon, Holm-corrected), Krippendorff's alpha and Fleiss' kappa per dimension. The outputs
// (Markdown, CSV, JSON, SVG) are in report-output.ts.

import { annotatorAgreement, krippendorffAlpha, type AnnotatorAgreement } from './agreement.js';
import { fleissKappaOfRatings, type FleissKappa } from './fleiss.js';
import { DIMENSIONS, type Dimension, type Study, type StudyKey } from './blind.js';
import { StudyError } from './errors.js';
import type { Rating } from './ratings.js';
import { createRng, hashString } from './rng.js';
import { holm, mean, quantile, sampleSd, signFlipTest, wilcoxonSignedRank, type PairedTestResult } from './stats.js';

/** Options of {@link scoreStudy}. */
export interface ScoreOptions {
  /** Seed of the bootstrap and of Monte-Carlo permutation draws (default 1). */
  seed?: number;
  /** Bootstrap replicates (default 2000). */
  bootstrap?: number;
  /** Confidence level of the intervals (default 0.95). */
  level?: number;
  /** Count judge annotators (names starting "judge:") in Table 4 too (default false: humans only). */
  includeJudges?: boolean;
}

/** One cell of Table 4. */
export interface Cell {
  mean: number;
  sd: number;
  /** Number of ratings. */
  n: number;
  /** Number of questions with at least one rating. */
  questions: number;
  ciLow: number;
  ciHigh: number;
}

/** Paired comparison of two models on one dimension. */
export interface Comparison {
  a: string;
  b: string;
  dimension: Dimension;
  /** Questions rated for both models. */
  pairs: number;
  /** Mean over those questions of (per-question mean of a) - (per-question mean of b). */
  meanDiff: number;
  signFlip: PairedTestResult & { pHolm: number };
  wilcoxon: PairedTestResult & { pHolm: number };
}

/** Agreement on one dimension. */
export interface DimensionAgreement {
  dimension: Dimension;
  alphaOrdinal: number;
  alphaInterval: number;
  /** Fleiss' kappa (nominal) over the items rated by the most raters; null when no item has two ratings. */
  fleiss: (FleissKappa & { left: number }) | null;
  annotators: AnnotatorAgreement[];
}

/** The full SUS report. */
export interface SusReport {
  models: string[];
  annotators: string[];
  /** Annotators whose ratings enter Table 4. */
  tableAnnotators: string[];
  table: Record<string, Record<Dimension, Cell>>;
  comparisons: Comparison[];
  agreement: DimensionAgreement[];
  /** Annotators flagged on at least one dimension. */
  flaggedAnnotators: string[];
  leaks: { flagged: number; excluded: number };
  /** Judge verdicts recorded as missing. */
  missingJudgeVerdicts: number;
  settings: { seed: number; bootstrap: number; level: number; includeJudges: boolean };
}

/**
 * Scores a study. Table 4 cells pool all ratings of a model on a dimension. The interval is
 * a percentile bootstrap (type-7 quantiles) that resamples questions, not ratings: the
 * generator is mulberry32(seed); each of B replicates draws |Q| indices
 * floor(u * |Q|) into the sorted list of question ids Q, shared by all models and dimensions,
 * and a replicate's cell mean pools every rating of the drawn questions (with repeats).
 * Comparisons use per-question means over annotators, on questions rated for both models;
 * Holm's correction runs across all model pairs and dimensions, separately per test.
 * Sign-flip draws (beyond 20 non-zero pairs) use mulberry32(FNV-1a(`${seed}:${a}:${b}:${dimension}`)).
 */
export function scoreStudy(study: Study, key: StudyKey, ratings: readonly Rating[], opts: ScoreOptions = {}): SusReport {
  const seed = opts.seed ?? 1;
  const B = opts.bootstrap ?? 2000;
  const level = opts.level ?? 0.95;
  if (!(level > 0 && level < 1)) throw new StudyError(`scoreStudy: level is the confidence of the intervals and must lie strictly between 0 and 1 (0.95 for 95%); got ${level}`);
  if (!Number.isInteger(B) || B < 0) throw new StudyError(`scoreStudy: bootstrap is a number of replicates and must be a non-negative integer; got ${B}`);
  const includeJudges = opts.includeJudges ?? false;
  const inStudy = new Set(study.items.map((i) => i.code));
  const valid = ratings.filter((r) => inStudy.has(r.code));
  const unknown = ratings.find((r) => !key.codes[r.code]);
  if (unknown) throw new StudyError(`rating by ${unknown.annotator} refers to code ${unknown.code}, which is not in the key; the ratings store does not belong to this study`);
  const rated = valid.filter((r): r is Rating & { value: 1 | 2 | 3 } => r.value !== null);
  const isJudge = (a: string): boolean => a.startsWith('judge:');
  const tableRatings = rated.filter((r) => includeJudges || !isJudge(r.annotator));
  const models = [...new Set(study.items.map((i) => key.codes[i.code]!.model))].sort();
  const annotators = [...new Set([...study.annotators.map((a) => a.name), ...valid.map((r) => r.annotator)])];
  const questions = [...new Set(study.items.map((i) => i.questionId))].sort();
  const qIndex = new Map(questions.map((q, i) => [q, i]));

  // sums[model][dim][question] and counts alike.
  const sums = new Map<string, Record<Dimension, Float64Array>>();
  const counts = new Map<string, Record<Dimension, Float64Array>>();
  const values = new Map<string, Record<Dimension, number[]>>();
  for (const m of models) {
    sums.set(m, Object.fromEntries(DIMENSIONS.map((d) => [d, new Float64Array(questions.length)])) as Record<Dimension, Float64Array>);
    counts.set(m, Object.fromEntries(DIMENSIONS.map((d) => [d, new Float64Array(questions.length)])) as Record<Dimension, Float64Array>);
    values.set(m, Object.fromEntries(DIMENSIONS.map((d) => [d, []])) as unknown as Record<Dimension, number[]>);
  }
  for (const r of tableRatings) {
    const k = key.codes[r.code]!;
    const q = qIndex.get(k.questionId)!;
    sums.get(k.model)![r.dimension][q]! += r.value;
    counts.get(k.model)![r.dimension][q]! += 1;
    values.get(k.model)![r.dimension].push(r.value);
  }

  const boot = new Map<string, number[]>();
  const rng = createRng(seed);
  const Q = questions.length;
  const draw = new Int32Array(Q);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Q; i++) draw[i] = Math.floor(rng() * Q);
    for (const m of models) {
      for (const d of DIMENSIONS) {
        const s = sums.get(m)![d];
        const c = counts.get(m)![d];
        let ss = 0;
        let cc = 0;
        for (let i = 0; i < Q; i++) {
          ss += s[draw[i]!]!;
          cc += c[draw[i]!]!;
        }
        if (cc > 0) {
          const list = boot.get(`${m}\u0000${d}`) ?? [];
          list.push(ss / cc);
          boot.set(`${m}\u0000${d}`, list);
        }
      }
    }
  }
  const alphaTail = (1 - level) / 2;
  const table: SusReport['table'] = {};
  for (const m of models) {
    table[m] = {} as Record<Dimension, Cell>;
    for (const d of DIMENSIONS) {
      const vs = values.get(m)![d];
      const bs = (boot.get(`${m}\u0000${d}`) ?? []).sort((x, y) => x - y);
      table[m]![d] = {
        mean: mean(vs),
        sd: sampleSd(vs),
        n: vs.length,
        questions: counts.get(m)![d].filter((c) => c > 0).length,
        ciLow: quantile(bs, alphaTail),
        ciHigh: quantile(bs, 1 - alphaTail),
      };
    }
  }

  const raw: Array<Omit<Comparison, 'signFlip' | 'wilcoxon'> & { sf: PairedTestResult; wx: PairedTestResult }> = [];
  for (let i = 0; i < models.length; i++) {
    for (let j = i + 1; j < models.length; j++) {
      const a = models[i]!;
      const b = models[j]!;
      for (const d of DIMENSIONS) {
        const diffs: number[] = [];
        const ca = counts.get(a)![d];
        const cb = counts.get(b)![d];
        for (let q = 0; q < Q; q++) {
          if (ca[q]! > 0 && cb[q]! > 0) diffs.push(sums.get(a)![d][q]! / ca[q]! - sums.get(b)![d][q]! / cb[q]!);
        }
        raw.push({
          a, b, dimension: d, pairs: diffs.length, meanDiff: mean(diffs),
          sf: signFlipTest(diffs, { seed: hashString(`${seed}:${a}:${b}:${d}`) }),
          wx: wilcoxonSignedRank(diffs),
        });
      }
    }
  }
  const sfHolm = holm(raw.map((r) => r.sf.p));
  const wxHolm = holm(raw.map((r) => r.wx.p));
  const comparisons: Comparison[] = raw.map(({ sf, wx, ...rest }, i) => ({
    ...rest,
    signFlip: { ...sf, pHolm: sfHolm[i]! },
    wilcoxon: { ...wx, pHolm: wxHolm[i]! },
  }));

  const codes = study.items.map((i) => i.code);
  const codeIndex = new Map(codes.map((c, i) => [c, i]));
  const agreement: DimensionAgreement[] = DIMENSIONS.map((d) => {
    const data = annotators.map(() => new Array<number | null>(codes.length).fill(null));
    for (const r of rated) if (r.dimension === d) data[annotators.indexOf(r.annotator)]![codeIndex.get(r.code)!] = r.value;
    return {
      dimension: d,
      alphaOrdinal: krippendorffAlpha(data, 'ordinal'),
      alphaInterval: krippendorffAlpha(data, 'interval'),
      fleiss: fleissKappaOfRatings(data, [1, 2, 3]),
      annotators: annotatorAgreement(annotators, data, 'ordinal'),
    };
  });
  const flaggedAnnotators = annotators.filter((a) => agreement.some((g) => g.annotators.some((x) => x.annotator === a && x.flagged)));
  return {
    models,
    annotators,
    tableAnnotators: annotators.filter((a) => includeJudges || !isJudge(a)),
    table,
    comparisons,
    agreement,
    flaggedAnnotators,
    leaks: { flagged: study.leaks.length, excluded: study.leaks.filter((l) => l.excluded).length },
    missingJudgeVerdicts: valid.filter((r) => r.value === null).length,
    settings: { seed, bootstrap: B, level, includeJudges },
  };
}
