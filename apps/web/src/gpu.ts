// Opens WebGPU for the page and watches it: no WebGPU, no adapter, and a lost device each become
// a message saying what happened and what to do, never a blank page.

import { initWebGPU, type DeviceInfo } from '@huatuo/tensor';

/** What the page shows when WebGPU cannot be used. */
export class GpuUnavailable extends Error {
  constructor(
    readonly title: string,
    message: string,
  ) {
    super(message);
    this.name = 'GpuUnavailable';
  }
}

const HOW =
  'Use a browser with WebGPU: Chrome or Edge 113+ on Windows, macOS or ChromeOS, Chrome on Linux or Android with WebGPU enabled ' +
  '(chrome://flags/#enable-unsafe-webgpu), Safari 26+, or Firefox 141+ on Windows. The page must come from https or from localhost.';

/**
 * Opens the adapter and device with the adapter's largest buffer limits and hands the device to
 * @huatuo/tensor. `onLost` runs when the device is lost later (a driver reset, a GPU hang, the tab evicted).
 */
export async function openGpu(onLost: (reason: string) => void): Promise<DeviceInfo> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu) {
    const why = window.isSecureContext ? 'This browser does not offer WebGPU.' : 'WebGPU needs a secure page (https or localhost), and this one is not.';
    throw new GpuUnavailable('No WebGPU', `${why} ${HOW}`);
  }
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new GpuUnavailable('No GPU adapter', `WebGPU is there but offers no adapter: the GPU may be blocklisted or disabled. ${HOW}`);
  }
  const features = (['shader-f16', 'subgroups', 'timestamp-query'] as const).filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features as GPUFeatureName[],
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  void device.lost.then((info) => onLost(`${info.reason === 'destroyed' ? 'destroyed' : 'lost'}${info.message ? `: ${info.message.replace(/\.+$/, '')}` : ''}`));
  return initWebGPU({ device });
}
