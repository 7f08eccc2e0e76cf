// Compiling a WGSL module into a compute pipeline on the device: at once, the device's verdict and the
// compiler's messages coming after, or awaited, rejecting with the step that failed and those messages.
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
 * Creates the pipeline of `source` now, without waiting for the device's verdict: `failure` resolves to
 * null when the device accepts it, else to the compiler's report naming `label` (looked up only then).
 */
export function createPipeline(device: GPUDevice, source: string, layout: GPUBindGroupLayout, label: string): { pipeline: GPUComputePipeline; failure: Promise<string | null> } {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: source, label });
  const pipeline = device.createComputePipeline({ layout: pipelineLayout(device, layout), compute: { module, entryPoint: 'main' }, label });
  const failure = device.popErrorScope().then(async (err) => (err ? compileReport(label, source, (await module.getCompilationInfo()).messages, [err], 'shader module or pipeline creation') : null));
  return { pipeline, failure };
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
  if (moduleErrors.length > 0) throw new DeviceError(compileReport(label, source, (await module.getCompilationInfo()).messages, moduleErrors, 'shader module'));
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

/**
 * Why the device refused a kernel: each compiler error at its line:column with the source line (after
 * includes and defines) and a marker under the span, or else the device's errors after `step`.
 */
function compileReport(label: string, source: string, messages: readonly GPUCompilationMessage[], errors: readonly GPUError[], step: string): string {
  const lines = source.split('\n');
  const compiler = messages.filter((m) => m.type === 'error').map((m) => {
    const at = `  line ${m.lineNum}:${m.linePos} error: ${m.message}`;
    const line = lines[m.lineNum - 1];
    if (m.lineNum < 1 || line === undefined) return at;
    const marker = ' '.repeat(Math.max(0, m.linePos - 1)) + '^'.repeat(Math.max(1, Math.min(m.length, line.length - m.linePos + 1)));
    return `${at}\n    ${line}\n    ${marker}`;
  });
  if (compiler.length === 0) return `kernel ${label}: ${step} failed: ${errors.map((e) => e.message.trim()).join('; ')}`;
  return `kernel ${label}: shader module failed to compile (lines of its WGSL after includes and defines):\n${compiler.join('\n')}`;
}

function pipelineLayout(device: GPUDevice, layout: GPUBindGroupLayout): GPUPipelineLayout {
  return device.createPipelineLayout({ bindGroupLayouts: [layout] });
}
