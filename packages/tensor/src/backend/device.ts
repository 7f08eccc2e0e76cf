// Opens the WebGPU device: the adapter's largest buffer limits, and the optional features
// the kernels can use (shader-f16, subgroups, timestamp-query) when the adapter has them.
import { missingAdapterHint, platformGPU, platformHostMemory, platformName, platformRequestAdapter } from '#platform';
import { DeviceError } from '../errors.js';

/** Optional WebGPU features the kernels use when present. */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'] as const;
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
  /**
   * Node only: open the adapter with Dawn's `allow_unsafe_apis` toggle, which exposes experimental
   * features such as `chromium-experimental-subgroup-matrix` (tensor-core matmul on GPUs that have it).
   * Default false, or true when the environment variable HUATUO_UNSAFE_APIS is `1`. Off by default
   * because the features it unlocks are experimental and less validated; the matmul search still checks
   * every kernel against the CPU reference before using it. Browsers expose what their flags allow.
   */
  unsafeApis?: boolean;
}

/** A subgroup-matrix shape the adapter runs: an M x K times K x N product per subgroup. */
export interface SubgroupMatrixConfig {
  M: number;
  N: number;
  K: number;
  /** Component type of the left and right matrices (`f16`, `f32`, ...). */
  componentType: string;
  /** Component type of the result matrix. */
  resultComponentType: string;
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
  /** A software (CPU) adapter such as lavapipe, whose buffers live in the host's memory. */
  isFallbackAdapter: boolean;
  /**
   * Bytes the adapter's buffers can take in all, when known: the host's memory for a fallback
   * (CPU) adapter in Node; null for a GPU, whose memory WebGPU does not report.
   */
  memoryBytes: number | null;
  /** Subgroup sizes the adapter reports (0 when unknown). */
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** Subgroup-matrix shapes (empty unless `chromium-experimental-subgroup-matrix` is enabled). */
  subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
}

/** Requests an adapter and a device with the adapter's maximum buffer limits. */
export async function openDevice(options: DeviceOptions = {}): Promise<{ device: GPUDevice; info: DeviceInfo }> {
  const gpu = platformGPU(options.unsafeApis ?? false);
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
    | (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number; subgroupMatrixConfigs?: readonly Record<string, unknown>[]; isFallbackAdapter?: boolean })
    | undefined;
  const name = [adapterInfo?.vendor, adapterInfo?.architecture, adapterInfo?.description]
    .filter((s) => s)
    .join(' ')
    .trim();
  const limits = device.limits;
  const isFallbackAdapter = adapterInfo?.isFallbackAdapter ?? false;
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
      isFallbackAdapter,
      memoryBytes: isFallbackAdapter ? (platformHostMemory() ?? null) : null,
      subgroupMinSize: adapterInfo?.subgroupMinSize ?? 0,
      subgroupMaxSize: adapterInfo?.subgroupMaxSize ?? 0,
      subgroupMatrixConfigs: features.has('chromium-experimental-subgroup-matrix') ? matrixConfigs(adapterInfo?.subgroupMatrixConfigs) : [],
    },
  };
}

/** The adapter's subgroup-matrix configs as plain objects, types lower-case (Dawn's objects do not serialize with JSON.stringify). */
function matrixConfigs(list: readonly Record<string, unknown>[] | undefined): SubgroupMatrixConfig[] {
  return [...(list ?? [])].map((c) => ({
    M: Number(c.M),
    N: Number(c.N),
    K: Number(c.K),
    componentType: String(c.componentType).toLowerCase(),
    resultComponentType: String(c.resultComponentType).toLowerCase(),
  }));
}
