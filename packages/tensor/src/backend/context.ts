// The process-wide WebGPU runtime that tensors live on.
import { DeviceError } from '../errors.js';
import { openDevice, type DeviceInfo, type DeviceOptions } from './device.js';
import { Runtime, type RuntimeStats } from './runtime.js';

let runtime: Runtime | null = null;
let opening: Promise<Runtime> | null = null;

/**
 * Opens the WebGPU device every tensor uses; call once before creating tensors. Later calls
 * return the same device's info.
 * @example
 * const info = await initWebGPU();
 * console.log(info.adapterName, [...info.features]);
 */
export async function initWebGPU(options: DeviceOptions = {}): Promise<DeviceInfo> {
  if (runtime) return runtime.info;
  opening ??= openDevice(options).then(({ device, info }) => (runtime = new Runtime(device, info)));
  try {
    return (await opening).info;
  } finally {
    opening = null;
  }
}

/** The runtime; throws when {@link initWebGPU} has not completed. */
export function getRuntime(): Runtime {
  if (!runtime) throw new DeviceError('no WebGPU device yet: call `await initWebGPU()` before creating tensors');
  return runtime;
}

/** The device info, or null before {@link initWebGPU}. */
export function deviceInfo(): DeviceInfo | null {
  return runtime?.info ?? null;
}

/** Whether the device has shader-f16 (so f16 tensors are available). */
export function hasF16(): boolean {
  return runtime?.info.features.has('shader-f16') ?? false;
}

/** Waits for all queued GPU work to finish. */
export async function synchronize(): Promise<void> {
  await getRuntime().sync();
}

/** Buffer and dispatch counters of the runtime (live buffers and bytes stay flat over a well-scoped loop). */
export function runtimeStats(): RuntimeStats {
  return getRuntime().stats();
}

/**
 * Restarts `runtimeStats().peakBytes` (and `peakAllocatedBytes`) from the bytes in use (and held) now,
 * to measure the peak of what follows.
 * @example
 * resetPeakBytes();
 * trainStep();
 * console.log(runtimeStats().peakBytes);
 */
export function resetPeakBytes(): void {
  getRuntime().pool.resetPeak();
}

/** Frees pooled buffers and destroys the device; tensors created before become unusable. */
export async function destroyWebGPU(): Promise<void> {
  if (!runtime) return;
  const rt = runtime;
  runtime = null;
  await rt.sync().catch(() => undefined);
  rt.pool.trim(() => rt.flush());
  rt.device.destroy();
}
