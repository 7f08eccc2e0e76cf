// Node platform: WebGPU through Dawn's bindings (the `webgpu` package). The only module
// of the package that imports Node-specific code; browsers get ./browser.ts instead.
import { create, globals } from 'webgpu';

/** Kept for the life of the process: if Dawn's instance is garbage-collected, its devices die with it. */
let dawnInstance: GPU | undefined;

/** Extra Dawn toggles from HUATUO_DAWN_FLAGS (comma-separated `enable-dawn-features=...` strings). */
function dawnOptions(): string[] {
  const options = ['enable-dawn-features=vulkan_enable_f16_on_nvidia'];
  const extra = globalThis.process?.env?.HUATUO_DAWN_FLAGS;
  if (extra) options.push(...extra.split(',').map((s) => s.trim()).filter(Boolean));
  return options;
}

/** The platform's `GPU` object, or undefined when the platform has none. */
export function platformGPU(): GPU | undefined {
  if (!dawnInstance) {
    if (typeof (globalThis as { GPUBufferUsage?: unknown }).GPUBufferUsage === 'undefined') {
      Object.assign(globalThis, globals);
    }
    globalThis.process.env.XDG_RUNTIME_DIR ??= '/tmp';
    dawnInstance = create(dawnOptions());
  }
  return dawnInstance;
}

export const platformName = 'node';

export const missingAdapterHint =
  'Node found no WebGPU adapter. On Linux without a GPU install the Vulkan loader and Mesa lavapipe ' +
  '(Debian bookworm: `bash scripts/setup.sh`, or apt-get install -t bookworm-backports libvulkan1 mesa-vulkan-drivers); ' +
  'with a GPU, install its Vulkan driver. See the README section "Prerequisites".';
