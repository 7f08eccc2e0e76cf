// Opens the WebGPU device: the adapter's largest buffer limits, and the optional features
// the kernels can use (shader-f16, subgroups, timestamp-query) when the adapter has them.
import { missingAdapterHint, platformGPU, platformName, platformRequestAdapter } from '#platform';
import { DeviceError } from '../errors.js';

/** Optional WebGPU features the kernels use when present. */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
export type OptionalFeature = (typeof OPTIONAL_FEATURES)[number];

/** Options of {@link initWebGPU}. */
export interface DeviceOptions {
  /** Use this device instead of opening one (the caller keeps ownership). */
  device?: GPUDevice;
  /** Adapter power preference passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
  /** Features to leave off even when the adapter offers them, e.g. `['shader-f16']` to force f32 paths. */
  disableFeatures?: OptionalFeature[];
  /**
   * Let Dawn (Node) print its notices that it lowered two dynamic-buffer limits of the adapter.
   * They say nothing about this library's work, so by default they are dropped.
   */
  showDawnNotices?: boolean;
}

/** What the opened device offers, as the kernels see it. */
export interface DeviceInfo {
  platform: string;
  /** Adapter vendor, architecture and description in one line. */
  adapterName: string;
  /** Optional features enabled on the device. */
  features: ReadonlySet<OptionalFeature>;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  /** Subgroup sizes the adapter reports (0 when unknown). */
  subgroupMinSize: number;
  subgroupMaxSize: number;
}

/** Requests an adapter and a device with the adapter's maximum buffer limits. */
export async function openDevice(options: DeviceOptions = {}): Promise<{ device: GPUDevice; info: DeviceInfo }> {
  const gpu = platformGPU();
  if (!gpu) throw new DeviceError(`no WebGPU on this ${platformName} platform: ${missingAdapterHint}`);
  let adapter: GPUAdapter | null = null;
  if (!options.device) {
    adapter = await platformRequestAdapter(gpu, options.powerPreference ? { powerPreference: options.powerPreference } : {}, options.showDawnNotices ?? false);
    if (!adapter) throw new DeviceError(`requestAdapter returned no adapter: ${missingAdapterHint}`);
  }
  const disabled = new Set(options.disableFeatures ?? []);
  const offered = options.device?.features ?? adapter!.features;
  const features = new Set<OptionalFeature>(OPTIONAL_FEATURES.filter((f) => offered.has(f) && !disabled.has(f)));
  let device = options.device;
  if (!device) {
    const limits = adapter!.limits;
    device = await adapter!.requestDevice({
      requiredFeatures: [...features] as GPUFeatureName[],
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
        maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      },
    });
  }
  const adapterInfo = (adapter?.info ?? (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo) as
    | (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number })
    | undefined;
  const name = [adapterInfo?.vendor, adapterInfo?.architecture, adapterInfo?.description]
    .filter((s) => s)
    .join(' ')
    .trim();
  const limits = device.limits;
  return {
    device,
    info: {
      platform: platformName,
      adapterName: name || 'unknown adapter',
      features,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      subgroupMinSize: adapterInfo?.subgroupMinSize ?? 0,
      subgroupMaxSize: adapterInfo?.subgroupMaxSize ?? 0,
    },
  };
}
