// The kernel table: for each WGSL module in kernels/, its storage bindings (generated from the file's
// spec block), the features it needs, its typed uniform packer, and how to turn defines into a
// compiled variant.
import type { OptionalFeature } from './backend/device.js';
import type { CompiledKernel, Runtime } from './backend/runtime.js';
import { paramLayouts, specifiedKernels, wgslSources, type ParamStruct, type ParamValues, type WgslName } from './kernels.generated.js';

/** A storage binding of a kernel, in binding order starting at 1 (binding 0 is the uniform block). */
export interface BindingSpec {
  name: string;
  access: 'read' | 'read_write';
}

/** What the runtime needs to know about a WGSL module. */
export interface KernelSpec {
  /** Whether binding 0 is a uniform `Params` block. */
  uniform: boolean;
  bindings: readonly BindingSpec[];
  /** Features the module needs whatever its defines (f16 variants add shader-f16 themselves). */
  features?: readonly OptionalFeature[];
}


/** Every kernel file, by name, as its spec block declares it. */
export const kernelSpecs: { [K in WgslName]: KernelSpec } = specifiedKernels;

/**
 * Packs the uniform block of a Params struct by field name (names and types generated from the
 * kernels' spec blocks, so a missing or misnamed field fails to compile).
 * @example packParams('fill', { numel: n, mode: 0, start: 1, step: 0 })
 */
export function packParams<S extends ParamStruct>(struct: S, values: ParamValues[S]): ArrayBuffer {
  const layout = paramLayouts[struct];
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(layout.size / 16) * 16));
  const view = new DataView(buf);
  const given = values as unknown as Record<string, number | readonly number[]>;
  for (const f of layout.fields) {
    const v = given[f.name];
    const list = typeof v === 'number' ? [v] : v;
    if (list === undefined || (typeof v === 'number') !== (f.count === 1) || list.length > f.count) {
      throw new Error(`internal: Params ${struct}.${f.name} (${f.type}) got ${JSON.stringify(v)}`);
    }
    list.forEach((x, i) => {
      const at = f.offset + Math.floor(i / f.lanes) * f.stride + (i % f.lanes) * 4;
      if (f.kind === 'f32') view.setFloat32(at, x, true);
      else if (!Number.isInteger(x)) throw new Error(`internal: Params ${struct}.${f.name} (${f.type}) got ${x}`);
      else if (f.kind === 'i32') view.setInt32(at, x, true);
      else view.setUint32(at, x >>> 0, true);
    });
  }
  return buf;
}

/** Defines of a kernel variant: `alias NAME = f32;` lines get the given type, `{{NAME}}` the given text. */
export type Defines = Readonly<Record<string, string>>;

/** Substitutes defines into a WGSL module and enables f16 when a type alias needs it. */
export function preprocess(name: WgslName, defines: Defines): string {
  let src: string = wgslSources[name];
  let needsF16 = false;
  src = src.replace(/^alias (\w+) = (\w+);$/gm, (line, alias: string) => {
    const t = defines[alias];
    if (t === undefined) return line;
    if (t === 'f16') needsF16 = true;
    return `alias ${alias} = ${t};`;
  });
  src = src.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const v = defines[key];
    if (v === undefined) throw new Error(`internal: kernel ${name} needs define ${key}`);
    return v;
  });
  return needsF16 ? `enable f16;\n${src}` : src;
}

/** The compiled pipeline of a kernel variant (compiled once, then cached by the runtime). */
export function compileKernel(rt: Runtime, name: WgslName, defines: Defines = {}): CompiledKernel {
  const keys = Object.keys(defines).sort();
  const key = `${name}(${keys.map((k) => `${k}=${defines[k]}`).join(',')})`;
  return rt.kernel(key, kernelSource(name, defines, key), key);
}

const sourceCache = new Map<string, string>();

/**
 * {@link preprocess}, once per `key`: the variant's name and the defines that tell it apart, as the
 * runtime keys its pipelines (a product runs many times; its module is substituted the first time).
 * Defines that are generated code may be passed as a function, called only the first time.
 */
export function kernelSource(name: WgslName, defines: Defines | (() => Defines), key: string): string {
  let s = sourceCache.get(key);
  if (s === undefined) sourceCache.set(key, (s = preprocess(name, typeof defines === 'function' ? defines() : defines)));
  return s;
}

/** Workgroup counts for `threads` threads in groups of `size`, folded into 2-D past the per-dimension limit. */
export function grid1d(threads: number, size: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / size));
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
