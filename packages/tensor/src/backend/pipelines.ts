// Compiling a WGSL module into a compute pipeline on the device: at once, its validation errors
// reported after the fact, or awaited, rejecting with the step that failed and the compiler's messages.
// The bind group layout comes from the module's binding declarations.
import { DeviceError } from '../errors.js';

/** A bind group layout and its signature: the binding types in order (`u` uniform, `r` read, `w` read_write). */
export interface BindingLayout {
  layout: GPUBindGroupLayout;
  signature: string;
}

const DECLARATION = /@group\((\d+)\)\s*@binding\((\d+)\)\s*var<(uniform|storage)(?:\s*,\s*(read_write|read))?>/g;

/**
 * The signature of a module's bindings (declarations in comments ignored), e.g. `u,r,r,w`: group 0
 * only, a uniform only at binding 0 (the Params block).
 */
export function bindingSignature(source: string, label: string): string {
  const types: string[] = [];
  for (const m of source.replace(/\/\/.*$/gm, '').matchAll(DECLARATION)) {
    const binding = Number(m[2]);
    const type = m[3] === 'uniform' ? 'u' : m[4] === 'read_write' ? 'w' : 'r';
    if (m[1] !== '0' || (type === 'u') !== (binding === 0) || types[binding] !== undefined) {
      throw new DeviceError(`internal: kernel ${label} declares ${m[0]}; kernels bind group 0, a uniform Params block at binding 0 only, each binding once`);
    }
    types[binding] = type;
  }
  return Array.from(types, (t) => t ?? '-').join(',');
}

/** The bind group layout of a signature from {@link bindingSignature}. */
export function createBindingLayout(device: GPUDevice, signature: string): GPUBindGroupLayout {
  const entries: GPUBindGroupLayoutEntry[] = [];
  signature.split(',').forEach((t, binding) => {
    if (t === '-') return;
    const type = t === 'u' ? 'uniform' : t === 'w' ? 'storage' : 'read-only-storage';
    entries.push({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } });
  });
  return device.createBindGroupLayout({ entries, label: signature });
}

/**
 * Creates the pipeline of `source` now. When the device later reports it invalid, `failed` is called
 * at once with the message still to come: the validation error and the compiler's lines, naming `label`.
 */
export function createPipeline(device: GPUDevice, source: string, layout: GPUBindGroupLayout, label: string, failed: (message: Promise<string>) => void): GPUComputePipeline {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: source, label });
  const pipeline = device.createComputePipeline({ layout: pipelineLayout(device, layout), compute: { module, entryPoint: 'main' }, label });
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
export async function createPipelineChecked(device: GPUDevice, source: string, layout: GPUBindGroupLayout, label: string): Promise<GPUComputePipeline> {
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
    pipeline = await device.createComputePipelineAsync({ layout: pipelineLayout(device, layout), compute: { module, entryPoint: 'main' }, label });
  } catch (e) {
    await device.popErrorScope();
    await device.popErrorScope();
    throw new DeviceError(`kernel ${label}: pipeline creation failed: ${(e as Error).message}`);
  }
  const errors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e !== null);
  if (errors.length > 0) throw new DeviceError(`kernel ${label}: pipeline creation failed: ${errors.map((e) => e.message).join('; ')}`);
  return pipeline;
}

function pipelineLayout(device: GPUDevice, layout: GPUBindGroupLayout): GPUPipelineLayout {
  return device.createPipelineLayout({ bindGroupLayouts: [layout] });
}
