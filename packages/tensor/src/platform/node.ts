// Node platform: WebGPU through Dawn's bindings (the `webgpu` package). The only module
// of the package that imports Node-specific code; browsers get ./browser.ts instead.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { create, globals } from 'webgpu';
import { withoutDawnNotices } from './native-stderr.js';

/** Kept for the life of the process: if Dawn's instance is garbage-collected, its devices die with it. */
const dawnInstances = new Map<boolean, GPU>();

/**
 * Dawn toggles: f16 on NVIDIA's Vulkan driver always; `allow_unsafe_apis` (experimental features such as
 * chromium-experimental-subgroup-matrix) only when asked; timestamps unquantized (browsers round them for
 * privacy, which in Node only blurs the profiler's short kernels); extra ones from HUATUO_DAWN_FLAGS
 * (comma-separated `enable-dawn-features=...` strings).
 */
function dawnOptions(unsafeApis: boolean): string[] {
  const toggles = ['vulkan_enable_f16_on_nvidia', ...(unsafeApis ? ['allow_unsafe_apis'] : [])];
  const options = [`enable-dawn-features=${toggles.join(',')}`, 'disable-dawn-features=timestamp_quantization'];
  const extra = globalThis.process?.env?.HUATUO_DAWN_FLAGS;
  if (extra) options.push(...extra.split(',').map((s) => s.trim()).filter(Boolean));
  return options;
}

/**
 * The platform's `GPU` object, or undefined when the platform has none. `unsafeApis` (or the
 * environment variable HUATUO_UNSAFE_APIS=1) enables Dawn's `allow_unsafe_apis` toggle.
 */
export function platformGPU(unsafeApis = false): GPU | undefined {
  const unsafe = unsafeApis || globalThis.process?.env?.HUATUO_UNSAFE_APIS === '1';
  let instance = dawnInstances.get(unsafe);
  if (!instance) {
    if (typeof (globalThis as { GPUBufferUsage?: unknown }).GPUBufferUsage === 'undefined') {
      Object.assign(globalThis, globals);
    }
    globalThis.process.env.XDG_RUNTIME_DIR ??= '/tmp';
    instance = create(dawnOptions(unsafe));
    dawnInstances.set(unsafe, instance);
  }
  return instance;
}

export const platformName = 'node';

/** The host's memory in bytes (what a CPU adapter's buffers come from). */
export function platformHostMemory(): number | undefined {
  return totalmem();
}

/**
 * Requests an adapter without Dawn's two limit notices on stderr (printed by native code on the
 * first request of every process), unless `showNotices`.
 */
export function platformRequestAdapter(gpu: GPU, options: GPURequestAdapterOptions, showNotices: boolean): Promise<GPUAdapter | null> {
  return withoutDawnNotices(() => gpu.requestAdapter(options), showNotices);
}

/**
 * What to do when Dawn finds no adapter, for a checkout of the repository and for an npm install of the package alike
 * (scripts/setup.sh is only in the former).
 */
export const missingAdapterHint =
  'Node found no WebGPU adapter. On Linux without a GPU, install the Vulkan loader and Mesa lavapipe 23 or newer: ' +
  '`sudo apt-get install libvulkan1 mesa-vulkan-drivers` (Debian 12 bookworm: add bookworm-backports to the apt sources, ' +
  'then `sudo apt-get install -t bookworm-backports libvulkan1 mesa-vulkan-drivers`; bookworm\'s Mesa 22.3 is too old). ' +
  'In a checkout of the huatuo-webgpu repository, `bash scripts/setup.sh` does this. ' +
  'With a GPU, install its Vulkan driver (macOS, Windows: update the GPU driver). See "Prerequisites" in the huatuo-webgpu README.';

/** Where the matmul tuning results live: $XDG_CACHE_HOME (or ~/.cache)/huatuo-webgpu/tiles.json. */
export function tuningCachePath(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const home = process.env.HOME;
  if (cachePath === null || cachePath.xdg !== xdg || cachePath.home !== home) {
    cachePath = { xdg, home, path: join(xdg || join(homedir(), '.cache'), 'huatuo-webgpu', 'tiles.json') };
  }
  return cachePath.path;
}

/** The last path tuningCachePath built and the environment it built it from (products ask often). */
let cachePath: { xdg: string | undefined; home: string | undefined; path: string } | null = null;

/** The last parse of the tuning cache, the file's identity then (null: absent), and when that was last checked. */
let parsedCache: { path: string; stamp: string | null; checked: number; data: Record<string, unknown> } | null = null;

/** How often (ms) a parsed tuning cache is checked against its file (another process may have written it). */
const CACHE_RECHECK_MS = 1000;

/**
 * One adapter's entry of the tuning cache, or undefined: the parsed value itself, the same object until
 * the file changes, so that a caller may keep what it derived from it.
 */
export function tuningCacheEntry(key: string): unknown {
  return parsedTuningCache()[key];
}

function parsedTuningCache(): Record<string, unknown> {
  const path = tuningCachePath();
  const now = performance.now();
  if (parsedCache?.path !== path || now - parsedCache.checked >= CACHE_RECHECK_MS) {
    const stamp = fileStamp(path);
    if (parsedCache?.path !== path || parsedCache.stamp !== stamp) parsedCache = { path, stamp, checked: now, data: stamp === null ? {} : parseTuningCache(path) };
    parsedCache.checked = now;
  }
  return parsedCache.data;
}

function fileStamp(path: string): string | null {
  try {
    const st = statSync(path, { bigint: true, throwIfNoEntry: false });
    return st ? `${st.size}:${st.mtimeNs}:${st.ino}` : null;
  } catch {
    return null;
  }
}

/** The cache's entries; a file that is not a JSON object is ignored (one warning naming it) and rewritten by the next search. */
function parseTuningCache(path: string, warn = true): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  try {
    const data: unknown = JSON.parse(text);
    if (data && typeof data === 'object' && !Array.isArray(data)) return data as Record<string, unknown>;
    if (warn) warnIgnoredCache(path, 'it is not a JSON object');
  } catch (e) {
    if (warn) warnIgnoredCache(path, (e as Error).message);
  }
  return {};
}

/** Says once per line of text that the tuning cache at `path` is ignored and why. */
export function warnIgnoredCache(path: string, why: string): void {
  process.emitWarning(`ignoring the matmul tuning cache ${path} (${why}); its choice is not used, and the next matmul search rewrites it`);
}

/** How long (ms) a writer waits for another's lock on the cache, and the age at which a lock is taken as abandoned. */
const LOCK_WAIT_MS = 2000;
const LOCK_STALE_MS = 10000;

/**
 * Sets one entry of the tuning cache, keeping the others as the file holds them now (another process's
 * included): under a lock file, the file is read again, the entry set, the oldest entries past `limit`
 * dropped by `age`, and the result written to a temp file renamed over the cache. A cache that cannot
 * be written is skipped.
 */
export function setTuningCacheEntry(key: string, entry: unknown, limit: number, age: (entry: unknown) => number): void {
  const path = tuningCachePath();
  try {
    mkdirSync(dirname(path), { recursive: true });
    const unlock = lockFile(`${path}.lock`);
    try {
      const cache = { ...parseTuningCache(path, false), [key]: entry };
      const keys = Object.keys(cache).sort((x, y) => age(cache[y]) - age(cache[x]));
      for (const old of keys.slice(Math.max(limit, 1))) if (old !== key) delete cache[old];
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(cache, null, 2));
      renameSync(tmp, path);
    } finally {
      unlock();
    }
  } catch {
    // A read-only home directory only costs a search per process.
  } finally {
    parsedCache = null;
  }
}

/** Takes the lock file (waiting up to LOCK_WAIT_MS, removing one older than LOCK_STALE_MS); returns its release. */
function lockFile(lock: string): () => void {
  const until = performance.now() + LOCK_WAIT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      return () => unlinkSync(lock);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const st = statSync(lock, { throwIfNoEntry: false });
    if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
      try {
        unlinkSync(lock);
      } catch {
        // Another writer removed it first.
      }
    } else if (performance.now() > until) {
      // Held past the wait: write without it (the rename still replaces the file whole).
      return () => undefined;
    } else {
      Atomics.wait(pause, 0, 0, 5);
    }
  }
}
