// Browser platform: WebGPU from `navigator.gpu`.

/**
 * The platform's `GPU` object, or undefined when the browser has none. Experimental features (subgroup
 * matrices) are whatever the browser exposes; `unsafeApis` has no effect here.
 */
export function platformGPU(_unsafeApis = false): GPU | undefined {
  return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
}

export const platformName = 'browser';

/** A page cannot know the host's memory exactly (navigator.deviceMemory is rounded and capped). */
export function platformHostMemory(): number | undefined {
  return undefined;
}

/** Requests an adapter (a browser prints nothing of its own to hide). */
export function platformRequestAdapter(gpu: GPU, options: GPURequestAdapterOptions, _showNotices: boolean): Promise<GPUAdapter | null> {
  return gpu.requestAdapter(options);
}

export const missingAdapterHint =
  'this browser exposes no WebGPU adapter (navigator.gpu). Use a browser with WebGPU enabled ' +
  '(Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu) on a page served over https or from localhost.';

let tuningCache: Record<string, unknown> = {};

/** The browser keeps matmul tuning results in memory only (one search per page load). */
export function tuningCachePath(): string {
  return 'memory';
}

/** One adapter's entry of the in-memory tuning cache, or undefined (the same object until the cache is replaced). */
export function tuningCacheEntry(key: string): unknown {
  return tuningCache[key];
}

/** Sets one entry of the in-memory tuning cache, the oldest by `age` past `limit` dropped. */
export function setTuningCacheEntry(key: string, entry: unknown, limit: number, age: (entry: unknown) => number): void {
  const cache: Record<string, unknown> = { ...tuningCache, [key]: entry };
  const keys = Object.keys(cache).sort((x, y) => age(cache[y]) - age(cache[x]));
  for (const old of keys.slice(Math.max(limit, 1))) if (old !== key) delete cache[old];
  tuningCache = cache;
}

/** Writes a warning that the tuning cache is ignored (the browser's is in memory, so never malformed). */
export function warnIgnoredCache(path: string, why: string): void {
  console.warn(`ignoring the matmul tuning cache ${path} (${why}); its choice is not used, and the next matmul search rewrites it`);
}
