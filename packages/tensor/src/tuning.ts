// Matmul kernel variants per adapter: the candidates an adapter can run, a small timed search at first
// use whose winner is cached (on disk in Node, in memory in the browser) under the adapter's name, and
// a switch to force one variant (tests, benchmarks) or to skip the search (HUATUO_MATMUL_TUNE=0).
import { loadTuningCache, saveTuningCache } from '#platform';
import type { DeviceInfo } from './backend/device.js';

/**
 * A matmul kernel variant. `v1` is the naive 16 x 16 tiled baseline; `v2` tiles `tile` x `tile` blocks of
 * the output in workgroup memory with 4 x 4 register blocks per thread; `v3` shares rows of a across one
 * subgroup of `sg` lanes (the adapter's subgroup size) with `rows` output rows per workgroup, reading a large
 * shared b packed into column panels first (by size; `pack` true or false forces it either way); `matvec` is
 * the decoding path for a single row (M = 1).
 */
export type MatmulVariant =
  | { kernel: 'v1' }
  | { kernel: 'v2'; tile: 32 | 64 }
  | { kernel: 'v3'; rows: 16 | 32; sg: number; pack?: boolean }
  | { kernel: 'matvec' };

/** The variants used for general products (`main`) and for single rows (`decode`). */
export interface MatmulChoice {
  main: MatmulVariant;
  /** Used where `main` cannot read the operands' layout in place and copying them is not cheap. */
  fallback: MatmulVariant;
  /** Whether single-row products (M = 1) use the matrix-vector kernel. */
  decode: boolean;
}

/** Subgroup sizes the v3 kernel is written for (lanes x 4 columns per workgroup). */
const V3_SUBGROUP_SIZES = [4, 8, 16, 32, 64];

/** Every general-product variant this adapter can run, in a fixed order. */
export function matmulCandidates(info: DeviceInfo): MatmulVariant[] {
  const out: MatmulVariant[] = [{ kernel: 'v1' }];
  if (info.maxComputeInvocationsPerWorkgroup >= 256 && info.maxComputeWorkgroupStorageSize >= 8192) out.push({ kernel: 'v2', tile: 64 });
  out.push({ kernel: 'v2', tile: 32 });
  const sg = v3SubgroupSize(info);
  if (sg) {
    out.push({ kernel: 'v3', rows: 32, sg });
    if (sg <= 16) out.push({ kernel: 'v3', rows: 16, sg });
  }
  return out;
}

/**
 * The subgroup size v3 can rely on, or 0: the adapter must have the subgroups feature and report one
 * size (min = max), since v3 is compiled for exactly that many lanes.
 */
export function v3SubgroupSize(info: DeviceInfo): number {
  if (!info.features.has('subgroups')) return 0;
  const sg = info.subgroupMinSize;
  return sg > 0 && sg === info.subgroupMaxSize && V3_SUBGROUP_SIZES.includes(sg) ? sg : 0;
}

/** A readable name of a variant, e.g. `v3(rows=32,sg=8)`. */
export function variantName(v: MatmulVariant): string {
  switch (v.kernel) {
    case 'v2':
      return `v2(tile=${v.tile})`;
    case 'v3':
      return `v3(rows=${v.rows},sg=${v.sg}${v.pack === undefined ? '' : `,pack=${v.pack}`})`;
    default:
      return v.kernel;
  }
}

/** The choice before any measurement: v3 where the adapter supports it, else the 64-tile v2. */
export function defaultChoice(info: DeviceInfo): MatmulChoice {
  const candidates = matmulCandidates(info);
  const fallback = candidates.find((v) => v.kernel === 'v2') ?? { kernel: 'v1' };
  return { main: candidates.find((v) => v.kernel === 'v3') ?? fallback, fallback, decode: true };
}

/** Key of an adapter in the tuning cache: name and driver as the adapter reports them. */
export function adapterKey(info: DeviceInfo): string {
  return `${info.platform}|${info.adapterName}|sg${info.subgroupMinSize}-${info.subgroupMaxSize}|${[...info.features].sort().join(',')}`;
}

let forced: MatmulChoice | null = null;
let tuned: { key: string; choice: MatmulChoice } | null = null;
let searching: Promise<MatmulChoice> | null = null;

/** Options of {@link setMatmulVariant}. */
export interface ForceOptions {
  /** Use the matrix-vector kernel for M = 1 (default false when forcing, so the forced kernel runs). */
  decode?: boolean;
}

/**
 * Forces one variant for every product (where it can read the operands; see `matmulPlan`), or restores
 * the tuned choice with `null`. Forcing also stops the search from running.
 * @example setMatmulVariant({ kernel: 'v2', tile: 32 }); // ... setMatmulVariant(null);
 */
export function setMatmulVariant(v: MatmulVariant | null, options: ForceOptions = {}): void {
  if (v === null) {
    forced = null;
    return;
  }
  const fallback: MatmulVariant = v.kernel === 'v3' || v.kernel === 'matvec' ? { kernel: 'v2', tile: 32 } : v;
  forced = v.kernel === 'matvec' ? { main: fallback, fallback, decode: true } : { main: v, fallback, decode: options.decode ?? false };
}

/** Whether the search may run: not when HUATUO_MATMUL_TUNE=0 or when a variant is forced. */
export function tuningEnabled(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.HUATUO_MATMUL_TUNE !== '0' && forced === null;
}

/**
 * The choice in force for this adapter: forced, else tuned (memory, then cache), else the default. On a
 * first use with tuning enabled and nothing cached, `startSearch` is called once to run the search.
 */
export function currentChoice(info: DeviceInfo, startSearch: () => Promise<MatmulChoice>): MatmulChoice {
  if (forced) return forced;
  const key = adapterKey(info);
  if (tuned?.key === key) return tuned.choice;
  const cached = readCached(key, info);
  if (cached) {
    tuned = { key, choice: cached };
    return cached;
  }
  if (tuningEnabled() && !searching) {
    searching = startSearch().finally(() => (searching = null));
    searching.catch(() => undefined);
  }
  return defaultChoice(info);
}

/** Records the search's winner for this adapter, in memory and in the platform's cache. */
export function recordChoice(info: DeviceInfo, choice: MatmulChoice, timings: Record<string, number>): void {
  const key = adapterKey(info);
  tuned = { key, choice };
  const cache = loadTuningCache();
  cache[key] = { choice, timings, measuredAt: new Date().toISOString() };
  saveTuningCache(cache);
}

/** The search in progress, if any (so callers can wait for it). */
export function searchInProgress(): Promise<MatmulChoice> | null {
  return searching;
}

/** Forgets the in-memory winner (the next use reads the cache again). */
export function resetTuning(): void {
  tuned = null;
}

function readCached(key: string, info: DeviceInfo): MatmulChoice | null {
  const entry = loadTuningCache()[key] as { choice?: MatmulChoice } | undefined;
  const choice = entry?.choice;
  if (!choice || typeof choice !== 'object') return null;
  const names = new Set(matmulCandidates(info).map(variantName));
  return names.has(variantName(choice.main)) && names.has(variantName(choice.fallback)) ? choice : null;
}
