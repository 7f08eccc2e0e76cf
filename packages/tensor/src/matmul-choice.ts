// Matmul kernel variants per adapter: the candidates an adapter may run, the choice in force (forced,
// tuned, cached or default), and the tuning cache (on disk in Node, in memory in the browser) keyed by
// the adapter and the fingerprint of the kernels and check its choice passed. The search that fills the cache is tuning.ts.
import { setTuningCacheEntry, tuningCacheEntry, tuningCachePath, warnIgnoredCache } from '#platform';
import type { DeviceInfo } from './backend/device.js';
import { sgmatStorage, sgmatThreads, v4Storage } from './kernelgen/matmul.js';
import { checkFingerprint } from './tuning-check.js';

/**
 * A matmul kernel variant. `v1` is the naive 16 x 16 tiled baseline; `v2` tiles `tile` x `tile` blocks of
 * the output in workgroup memory with 4 x 4 register blocks per thread; `v3` shares rows of a across one
 * subgroup of `sg` lanes (the adapter's subgroup size) with `rows` output rows per workgroup, reading a large
 * shared b packed into column panels first (by size; `pack` true or false forces it either way); `v4` is
 * shaped for GPUs (256 threads, `tile` x `tile` outputs, 8 x 8 or 4 x 4 register blocks, vec4 workgroup
 * reads); `sgmat` multiplies f16 tiles with subgroup matrices (`m` x `k` times `k` x `n` per subgroup,
 * f32 results; f16 products only); `matvec` is the decoding path for a single row (M = 1), one thread
 * per 4 outputs, or with `sg` the lanes of a subgroup striding along k with a subgroup sum.
 */
export type MatmulVariant =
  | { kernel: 'v1' }
  | { kernel: 'v2'; tile: 32 | 64 }
  | { kernel: 'v3'; rows: 16 | 32; sg: number; pack?: boolean }
  | { kernel: 'v4'; tile: 64 | 128 }
  | SgmatVariant
  | DecodeVariant;

/**
 * A subgroup-matrix variant: the adapter's `m` x `n` x `k` matrix config at subgroup size `sg`; each
 * workgroup computes a `tm` x `tn` block of c, each subgroup a `wm` x `wn` part of it.
 */
export interface SgmatVariant {
  kernel: 'sgmat';
  m: number;
  n: number;
  k: number;
  sg: number;
  tm: number;
  tn: number;
  wm: number;
  wn: number;
  /**
   * Subgroups load their matrices straight from a and b in storage (matmul_sgmat_direct.wgsl) where a
   * product is tile-aligned; other products run the staged kernel of the same tiles.
   */
  direct?: boolean;
}

/** A single-row (M = 1) variant. */
export type DecodeVariant = { kernel: 'matvec'; sg?: number; wide?: boolean; groups?: number };

/** The variants used for general products (`main`, `f16`) and for single rows (`decode`). */
export interface MatmulChoice {
  main: MatmulVariant;
  /** Used where `main` cannot read the operands' layout in place and copying them is not cheap. */
  fallback: MatmulVariant;
  /** The variant for f16 products when it differs from `main` (the subgroup-matrix kernel is f16 only). */
  f16?: MatmulVariant;
  /** The matrix-vector variant for single-row products, or null to use the general variants. */
  decode: DecodeVariant | null;
  /**
   * Workgroups a product that fills few of them is split along k to fill (its slices summed by a second
   * pass), as the LoRA products' rank-8 sides need on a GPU; absent or 0: never split. Set by the search
   * only where splitting measured faster.
   */
  splitK?: number;
}

/** Subgroup sizes the v3 kernel is written for (lanes x 4 columns per workgroup). */
const V3_SUBGROUP_SIZES = [4, 8, 16, 32, 64];
/** Subgroup-matrix sides the sgmat kernel takes, and its workgroup / subgroup tiles (k steps of SGMAT_BK). */
const SGMAT_SIDES = [8, 16];
const SGMAT_TILES: Array<[tm: number, tn: number, wm: number, wn: number]> = [
  [64, 64, 32, 32],
  [128, 64, 64, 32],
  [128, 128, 64, 32],
  [128, 128, 64, 64],
  [64, 64, 64, 64],
];
export const SGMAT_BK = 32;
/** Result matrices a subgroup may hold (registers: each is SM x SN f32 over the subgroup's lanes). */
const SGMAT_MAX_RESULTS = 16;

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
  // v4's 256-thread workgroups suit GPUs (subgroups of 16 lanes or more), not CPU adapters.
  if (info.maxComputeInvocationsPerWorkgroup >= 256 && info.subgroupMinSize >= 16) {
    if (info.maxComputeWorkgroupStorageSize >= v4Storage(128)) out.push({ kernel: 'v4', tile: 128 });
    out.push({ kernel: 'v4', tile: 64 });
  }
  out.push(...sgmatCandidates(info));
  return out;
}

/** Subgroup-matrix variants: f16 x f16 -> f32 configs the adapter lists, with one fixed subgroup size. */
export function sgmatCandidates(info: DeviceInfo): MatmulVariant[] {
  const sg = info.subgroupMinSize;
  if (!info.features.has('chromium-experimental-subgroup-matrix') || !info.features.has('shader-f16')) return [];
  if (sg === 0 || sg !== info.subgroupMaxSize) return [];
  const configs = info.subgroupMatrixConfigs.filter(
    (c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && [c.M, c.N, c.K].every((d) => SGMAT_SIDES.includes(d)),
  );
  const out: SgmatVariant[] = [];
  const direct: SgmatVariant[] = [];
  for (const c of configs) {
    for (const [tm, tn, wm, wn] of SGMAT_TILES) {
      const shape = { sm: c.M, sn: c.N, sk: c.K, tm, tn, wm, wn, bk: SGMAT_BK };
      if ((wm / c.M) * (wn / c.N) > SGMAT_MAX_RESULTS || SGMAT_BK % c.K !== 0) continue;
      if (sgmatThreads(shape, sg) > info.maxComputeInvocationsPerWorkgroup || sgmatStorage(shape) > info.maxComputeWorkgroupStorageSize) continue;
      out.push({ kernel: 'sgmat', m: c.M, n: c.N, k: c.K, sg, tm, tn, wm, wn });
      // The direct kernel runs unaligned products with the staged one, so it needs the staged one's limits.
      direct.push({ kernel: 'sgmat', m: c.M, n: c.N, k: c.K, sg, tm, tn, wm, wn, direct: true });
    }
  }
  return [...out, ...direct];
}

/** Subgroups a workgroup of the many-subgroup wide matrix-vector variant holds. */
const MATVEC_GROUPS = 4;

/** Single-row variants: a thread per 4 outputs always; lanes along k where the subgroup size is fixed. */
export function decodeCandidates(info: DeviceInfo): DecodeVariant[] {
  const sg = v3SubgroupSize(info);
  if (!sg) return [{ kernel: 'matvec' }];
  const out: DecodeVariant[] = [{ kernel: 'matvec' }, { kernel: 'matvec', sg }, { kernel: 'matvec', sg, wide: true }];
  // Several subgroups a workgroup: GPUs (subgroups of 16 lanes or more) cap the workgroups resident per core.
  if (sg >= 16 && info.maxComputeInvocationsPerWorkgroup >= sg * MATVEC_GROUPS) out.push({ kernel: 'matvec', sg, wide: true, groups: MATVEC_GROUPS });
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
    case 'v4':
      return `${v.kernel}(tile=${v.tile})`;
    case 'v3':
      return `v3(rows=${v.rows},sg=${v.sg}${v.pack === undefined ? '' : `,pack=${v.pack}`})`;
    case 'sgmat':
      return `sgmat(${v.m}x${v.n}x${v.k},sg=${v.sg},tile=${v.tm}x${v.tn}/${v.wm}x${v.wn}${v.direct ? ',direct' : ''})`;
    case 'matvec':
      return v.sg === undefined ? 'matvec' : `matvec(sg=${v.sg}${v.wide ? ',wide' : ''}${v.groups ? `,groups=${v.groups}` : ''})`;
    default:
      return v.kernel;
  }
}

/** The choice before any measurement: v3 where the adapter supports it, else the 64-tile v2. */
export function defaultChoice(info: DeviceInfo): MatmulChoice {
  const candidates = matmulCandidates(info);
  const fallback = candidates.find((v) => v.kernel === 'v2') ?? { kernel: 'v1' };
  return { main: candidates.find((v) => v.kernel === 'v3') ?? fallback, fallback, decode: { kernel: 'matvec' } };
}

/** Key of an adapter in the tuning cache: name and driver as the adapter reports them. */
export function adapterKey(info: DeviceInfo): string {
  let key = adapterKeys.get(info);
  if (key === undefined) {
    key = `${info.platform}|${info.adapterName}|sg${info.subgroupMinSize}-${info.subgroupMaxSize}|${[...info.features].sort().join(',')}`;
    adapterKeys.set(info, key);
  }
  return key;
}

/**
 * Key of an adapter's entry in the tuning cache: the adapter's key and the fingerprint of what its
 * candidates' check compiles and compares, so that a choice checked by another build (other kernels or
 * check cases) or on another driver is not used. Entries of other fingerprints stay for the builds that wrote them.
 */
export function tuningCacheKey(info: DeviceInfo): string {
  let key = cacheKeys.get(info);
  if (key === undefined) {
    key = `${adapterKey(info)}|kernels ${checkFingerprint(info, [...matmulCandidates(info), ...decodeCandidates(info)])}`;
    cacheKeys.set(info, key);
  }
  return key;
}

/** Each device's keys and default choice, made once: every product asks for the choice in force. */
const adapterKeys = new WeakMap<DeviceInfo, string>();
const cacheKeys = new WeakMap<DeviceInfo, string>();
const defaults = new WeakMap<DeviceInfo, MatmulChoice>();

/** How one candidate fared in the search. */
export interface CandidateReport {
  name: string;
  variant: MatmulVariant;
  /** `ok`: correct and timed; `wrong`: results differ from the CPU reference; `failed`: no pipeline or a device error. */
  status: 'ok' | 'wrong' | 'failed';
  /** Why a candidate was refused (the case, the first bad element, or the device's message). */
  reason?: string;
  /** Milliseconds over the timed shapes, by dtype (`f32`, `f16`, `decode`); absent when not timed. */
  ms?: Record<string, number>;
}

/** What a search checked and measured, and what it chose; kept in the tuning cache. */
export interface MatmulTuningReport {
  adapter: string;
  measuredAt: string;
  /** Timed shapes, e.g. `q/k/v/o [2048,4096]x[4096,4096]^T` (scaled by 1 / `scale` on slow adapters). */
  shapes: string[];
  /** Every timed dimension was divided by this to keep the search short on this adapter. */
  scale: number;
  /**
   * How the candidates were timed: the GPU time of their kernels by timestamp queries, or (without
   * timestamp-query, while a Profiler recorded, or with nothing timed) the wall time to the end of the GPU work.
   */
  timing: 'timestamp-query' | 'wall-clock';
  candidates: CandidateReport[];
  choice: MatmulChoice;
  /** The LoRA products timed as they are and split along k (absent: none would split on this adapter). */
  split?: SplitReport;
}

/** Milliseconds of the LoRA products under the chosen kernels, as they are (`ms`) and split to fill `target` workgroups. */
export interface SplitReport {
  target: number;
  ms: number;
  msSplit: number;
}

/**
 * Version of the cache entries; older ones are ignored and the search runs again: 2 added the correctness
 * check, 3 the v4 kernel's vec4 staging and the split of products along k, 4 timing by timestamp queries,
 * 5 the key's fingerprint of the checked kernels.
 */
const CACHE_VERSION = 5;
/** Entries the cache file keeps (the most recently measured): several builds and adapters may share it. */
const CACHE_ENTRIES = 32;

let forced: MatmulChoice | null = null;
let tuned: { key: string; choice: MatmulChoice; report: MatmulTuningReport | null } | null = null;
let searching: Promise<MatmulChoice> | null = null;

/** Options of {@link setMatmulVariant}. */
export interface ForceOptions {
  /** Use the matrix-vector kernel for M = 1 (default false when forcing, so the forced kernel runs). */
  decode?: boolean;
  /** Split products that fill few workgroups along k, to fill this many (see {@link MatmulChoice.splitK}). */
  splitK?: number;
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
  const fallback: MatmulVariant = v.kernel === 'v1' || v.kernel === 'v2' || v.kernel === 'v4' ? v : { kernel: 'v2', tile: 32 };
  if (v.kernel === 'matvec') forced = { main: fallback, fallback, decode: v };
  else forced = { main: v, fallback, decode: options.decode ? { kernel: 'matvec' } : null };
  if (options.splitK) forced.splitK = options.splitK;
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
  const key = tuningCacheKey(info);
  if (tuned?.key === key) return tuned.choice;
  const cached = readCached(key, info);
  if (cached) {
    tuned = { key, ...cached };
    return cached.choice;
  }
  if (tuningEnabled() && !searching) {
    searching = startSearch().finally(() => (searching = null));
    searching.catch(() => undefined);
  }
  let fallback = defaults.get(info);
  if (fallback === undefined) defaults.set(info, (fallback = defaultChoice(info)));
  return fallback;
}

/** The choice made for this adapter (forced, tuned or cached), or null while none is: starts no search. */
export function choiceMade(info: DeviceInfo): MatmulChoice | null {
  if (forced) return forced;
  const key = tuningCacheKey(info);
  return tuned?.key === key ? tuned.choice : (readCached(key, info)?.choice ?? null);
}

/** Records the search's choice and report for this adapter, in memory and in the platform's cache. */
export function recordChoice(info: DeviceInfo, report: MatmulTuningReport): void {
  const key = tuningCacheKey(info);
  tuned = { key, choice: report.choice, report };
  const entry = { version: CACHE_VERSION, choice: report.choice, report, measuredAt: report.measuredAt };
  setTuningCacheEntry(key, entry, CACHE_ENTRIES, measuredAt);
}

/** The search in progress, if any (so callers can wait for it). */
export function searchInProgress(): Promise<MatmulChoice> | null {
  return searching;
}

/** Forgets the in-memory winner (the next use reads the cache again). */
export function resetTuning(): void {
  tuned = null;
}

/** The report of the search behind the choice in force (this process's, or the cached one), or null. */
export function lastTuningReport(info: DeviceInfo): MatmulTuningReport | null {
  const key = tuningCacheKey(info);
  if (tuned?.key === key) return tuned.report;
  return readCached(key, info)?.report ?? null;
}

interface CachedChoice {
  choice: MatmulChoice;
  report: MatmulTuningReport | null;
}

/**
 * The last cache entry read and what it gave: while no choice is tuned (tuning off, or the search still
 * running) every product asks, and the entry stays the same object until the file changes.
 */
let lastRead: { key: string; info: DeviceInfo; entry: unknown; result: CachedChoice | null } | null = null;

function readCached(key: string, info: DeviceInfo): CachedChoice | null {
  const entry = tuningCacheEntry(key);
  if (lastRead !== null && lastRead.entry === entry && lastRead.key === key && lastRead.info === info) return lastRead.result;
  const result = validCached(info, entry);
  lastRead = { key, info, entry, result };
  return result;
}

/** When an entry was measured (ms since 1970), 0 when it does not say: the oldest go first when the cache is full. */
function measuredAt(entry: unknown): number {
  const at = entry && typeof entry === 'object' ? Date.parse(String((entry as { measuredAt?: unknown }).measuredAt)) : NaN;
  return Number.isFinite(at) ? at : 0;
}

/**
 * The entry's choice and report when the entry is of this cache version and names only variants the
 * adapter runs; an entry of this version in another shape is ignored with a warning naming the file.
 */
function validCached(info: DeviceInfo, entry: unknown): CachedChoice | null {
  if (!entry || typeof entry !== 'object' || (entry as { version?: unknown }).version !== CACHE_VERSION) return null;
  const { choice, report } = entry as { choice?: unknown; report?: unknown };
  const isVariant = (v: unknown): v is MatmulVariant => !!v && typeof v === 'object' && typeof (v as { kernel?: unknown }).kernel === 'string';
  const c = choice as Partial<Record<keyof MatmulChoice, unknown>> | null | undefined;
  const shaped =
    !!c &&
    typeof c === 'object' &&
    isVariant(c.main) &&
    isVariant(c.fallback) &&
    (c.f16 === undefined || isVariant(c.f16)) &&
    (c.decode === null || isVariant(c.decode)) &&
    (c.splitK === undefined || typeof c.splitK === 'number') &&
    (report === undefined || (!!report && typeof report === 'object'));
  if (!shaped) {
    warnIgnoredCache(tuningCachePath(), 'its entry for this adapter is not a tuning choice');
    return null;
  }
  const ok = c as MatmulChoice;
  const names = new Set(matmulCandidates(info).map(variantName));
  const decodeNames = new Set(decodeCandidates(info).map(variantName));
  const known = (v: MatmulVariant | undefined) => v === undefined || names.has(variantName(v));
  const decodeOk = ok.decode === null || decodeNames.has(variantName(ok.decode));
  return known(ok.main) && known(ok.fallback) && known(ok.f16) && decodeOk ? { choice: ok, report: (report as MatmulTuningReport | undefined) ?? null } : null;
}
