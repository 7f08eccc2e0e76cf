// Compiling a WGSL module into a compute pipeline on the device: at once, its validation errors
// reported after the fact, or awaited, rejecting with the step that failed and the compiler's messages.
import { DeviceError } from '../errors.js';

/**
 * Creates the pipeline of `source` now. When the device later reports it invalid, `failed` is called
 * at once with the message still to come: the validation error and the compiler's lines, naming `label`.
 */
export function createPipeline(device: GPUDevice, source: string, label: string, failed: (message: Promise<string>) => void): GPUComputePipeline {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: source, label });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
  device.popErrorScope().then((err) => {
    if (!err) return;
    failed(
      module.getCompilationInfo().then((info) => {
        const lines = info.messages.map((m) => `  line ${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
        return `kernel ${label} failed to compile: ${err.message}\n${lines.join('\n')}`;
      }),
    );
  });
  return pipeline;
}

/**
 * Creates the pipeline of `source` asynchronously and rejects with a DeviceError naming `label`, the
 * step (shader module or pipeline) and the compiler's messages when this device cannot build it.
 */
export async function createPipelineChecked(device: GPUDevice, source: string, label: string): Promise<GPUComputePipeline> {
  device.pushErrorScope('internal');
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: source, label });
  const moduleErrors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e !== null);
  const messages = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  if (moduleErrors.length > 0 || messages.length > 0) {
    const lines = messages.map((m) => `line ${m.lineNum}:${m.linePos} ${m.message}`);
    throw new DeviceError(`kernel ${label}: shader module failed: ${[...moduleErrors.map((e) => e.message), ...lines].join('; ')}`);
  }
  let pipeline: GPUComputePipeline;
  device.pushErrorScope('internal');
  device.pushErrorScope('validation');
  try {
    pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
  } catch (e) {
    await device.popErrorScope();
    await device.popErrorScope();
    throw new DeviceError(`kernel ${label}: pipeline creation failed: ${(e as Error).message}`);
  }
  const errors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e !== null);
  if (errors.length > 0) throw new DeviceError(`kernel ${label}: pipeline creation failed: ${errors.map((e) => e.message).join('; ')}`);
  return pipeline;
}
