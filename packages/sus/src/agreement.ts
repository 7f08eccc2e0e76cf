// Krippendorff's alpha from the coincidence matrix (Krippendorff 2011, "Computing
// Krippendorff's Alpha-Reliability"), for nominal, ordinal, interval and ratio data with
// any number of coders and missing values; plus a per-annotator agreement screen.

import { StatsError } from './errors.js';

/** Level of measurement, which picks the difference function delta^2. */
export type AlphaLevel = 'nominal' | 'ordinal' | 'interval' | 'ratio';

/** Reliability data: `data[coder][unit]`, `null` (or NaN) where that coder did not rate that unit. */
export type ReliabilityData = ReadonlyArray<ReadonlyArray<number | null>>;

/**
 * Krippendorff's alpha = 1 - D_o / D_e = 1 - (n - 1) sum_ck o_ck d2(c,k) / sum_ck n_c n_k d2(c,k),
 * where o_ck is the coincidence matrix (each ordered pair of values within a unit with m_u
 * values counts 1 / (m_u - 1)), n_c its margins and n the number of pairable values.
 * Units with fewer than two values are not pairable and are ignored. Ordinal d2 uses the
 * margins: d2(c,k) = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2. Returns NaN when no
 * disagreement is possible (all pairable values equal).
 * @example krippendorffAlpha([[1, 2, 3], [1, 2, 2]], 'interval')
 */
export function krippendorffAlpha(data: ReliabilityData, level: AlphaLevel): number {
  const units = data.reduce((m, row) => Math.max(m, row.length), 0);
  const perUnit: number[][] = [];
  for (let u = 0; u < units; u++) {
    const vals: number[] = [];
    for (const row of data) {
      const v = row[u];
      if (v !== null && v !== undefined && !Number.isNaN(v)) vals.push(v);
    }
    if (vals.length >= 2) perUnit.push(vals);
  }
  const values = [...new Set(perUnit.flat())].sort((a, b) => a - b);
  if (level === 'ratio' && values.some((v) => v < 0)) {
    throw new StatsError(`krippendorffAlpha: ratio data must be non-negative; got ${values[0]}. Use 'interval' for signed scales.`);
  }
  const V = values.length;
  const index = new Map(values.map((v, i) => [v, i]));
  const o = Array.from({ length: V }, () => new Float64Array(V));
  for (const vals of perUnit) {
    const w = 1 / (vals.length - 1);
    for (let i = 0; i < vals.length; i++) {
      for (let j = 0; j < vals.length; j++) {
        if (i === j) continue;
        o[index.get(vals[i]!)!]![index.get(vals[j]!)!]! += w;
      }
    }
  }
  const nc = o.map((row) => row.reduce((a, b) => a + b, 0));
  const n = nc.reduce((a, b) => a + b, 0);
  const d2 = (c: number, k: number): number => {
    const vc = values[c]!;
    const vk = values[k]!;
    switch (level) {
      case 'nominal':
        return c === k ? 0 : 1;
      case 'interval':
        return (vc - vk) ** 2;
      case 'ratio':
        return vc + vk === 0 ? 0 : ((vc - vk) / (vc + vk)) ** 2;
      case 'ordinal': {
        const [lo, hi] = c <= k ? [c, k] : [k, c];
        let s = 0;
        for (let g = lo; g <= hi; g++) s += nc[g]!;
        return (s - (nc[c]! + nc[k]!) / 2) ** 2;
      }
    }
  };
  let observed = 0;
  let expected = 0;
  for (let c = 0; c < V; c++) {
    for (let k = 0; k < V; k++) {
      const d = d2(c, k);
      observed += o[c]![k]! * d;
      expected += nc[c]! * nc[k]! * d;
    }
  }
  if (expected === 0) return NaN;
  return 1 - ((n - 1) * observed) / expected;
}

/** How one annotator agrees with the others. */
export interface AnnotatorAgreement {
  annotator: string;
  /** Interval alpha between this annotator and the mean of the other annotators, per unit. */
  withRest: number;
  /** Alpha of all annotators without this one, at the level asked. */
  withoutThisOne: number;
  /** Units this annotator rated that at least one other annotator also rated. */
  units: number;
  /** True when `withRest` lies far below the others' (see {@link annotatorAgreement}). */
  flagged: boolean;
}

/**
 * Screens annotators: for each, the interval alpha between their ratings and the per-unit
 * mean of everyone else's, and alpha without them. An annotator is flagged when withRest is
 * below median - max(0.2, 3 * 1.4826 * MAD) of all annotators' withRest values (a robust
 * z-score of 3, with a floor of 0.2 so that a tight group does not flag small differences),
 * or when it is NaN while others are not.
 */
export function annotatorAgreement(
  names: readonly string[],
  data: ReliabilityData,
  level: AlphaLevel,
): AnnotatorAgreement[] {
  const units = data.reduce((m, row) => Math.max(m, row.length), 0);
  const rows = names.map((annotator, c) => {
    const mine: Array<number | null> = [];
    const rest: Array<number | null> = [];
    let count = 0;
    for (let u = 0; u < units; u++) {
      const v = data[c]?.[u];
      const others: number[] = [];
      data.forEach((row, k) => {
        const x = row[u];
        if (k !== c && x !== null && x !== undefined && !Number.isNaN(x)) others.push(x);
      });
      if (v === null || v === undefined || Number.isNaN(v) || others.length === 0) {
        mine.push(null);
        rest.push(null);
        continue;
      }
      count++;
      mine.push(v);
      rest.push(others.reduce((a, b) => a + b, 0) / others.length);
    }
    const withRest = krippendorffAlpha([mine, rest], 'interval');
    const withoutThisOne = krippendorffAlpha(data.filter((_, k) => k !== c), level);
    return { annotator, withRest, withoutThisOne, units: count, flagged: false };
  });
  const finite = rows.map((r) => r.withRest).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (finite.length >= 3) {
    const med = median(finite);
    const mad = median(finite.map((x) => Math.abs(x - med)).sort((a, b) => a - b));
    const threshold = med - Math.max(0.2, 3 * 1.4826 * mad);
    for (const r of rows) r.flagged = Number.isNaN(r.withRest) ? true : r.withRest < threshold;
  }
  return rows;
}

function median(sorted: readonly number[]): number {
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
}
