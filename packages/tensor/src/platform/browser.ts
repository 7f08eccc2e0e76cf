// Browser platform: WebGPU from `navigator.gpu`.

/** The platform's `GPU` object, or undefined when the browser has none. */
export function platformGPU(): GPU | undefined {
  return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
}

export const platformName = 'browser';

export const missingAdapterHint =
  'this browser exposes no WebGPU adapter (navigator.gpu). Use a browser with WebGPU enabled ' +
  '(Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu) on a page served over https or from localhost.';
