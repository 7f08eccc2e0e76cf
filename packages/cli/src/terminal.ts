// What the commands print and the device they open: lines on stdout, and the GPU with its adapter
// line (the runtime's own notices only with --verbose).
import { initWebGPU, readyMatmul } from '@huatuo/tensor';

/** Writes one line to stdout. */
export const say = (s = ''): void => void process.stdout.write(`${s}\n`);

/** Set by the global --verbose flag: show the GPU runtime's own notices. */
let verbose = false;

/** Sets what the global --verbose flag asks for. */
export function setVerbose(on: boolean): void {
  verbose = on;
}

/** Opens the GPU, prints the adapter and readies the matmul kernels. */
export async function openDevice(): Promise<void> {
  const info = await initWebGPU({ showDawnNotices: verbose });
  say(`device: ${info.adapterName} (${[...info.features].join(', ') || 'no optional features'})`);
  await readyMatmul();
}
