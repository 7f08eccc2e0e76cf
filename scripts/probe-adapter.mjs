// Prints the WebGPU adapter Dawn finds in Node, or exits 1 when there is none or it cannot open a
// device (Mesa older than 23 offers an adapter whose device creation fails).
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.error('no WebGPU adapter');
  process.exit(1);
}
try {
  const device = await adapter.requestDevice();
  device.destroy();
} catch (e) {
  console.error(`the adapter cannot open a device: ${e.message}`);
  process.exit(1);
}
const info = adapter.info ?? {};
console.log(`${info.vendor || '?'} ${info.architecture || ''} ${info.device || ''} ${info.description || ''}`.replace(/\s+/g, ' ').trim());
process.exit(0);
