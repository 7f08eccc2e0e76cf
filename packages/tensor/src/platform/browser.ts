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

/** The in-memory tuning cache. */
export function loadTuningCache(): Record<string, unknown> {
  return tuningCache;
}

/** One adapter's entry of the in-memory tuning cache, or undefined (the same object until the cache is replaced). */
export function tuningCacheEntry(key: string): unknown {
  return tuningCache[key];
}

/** Replaces the in-memory tuning cache. */
export function saveTuningCache(cache: Record<string, unknown>): void {
  tuningCache = { ...cache };
}
