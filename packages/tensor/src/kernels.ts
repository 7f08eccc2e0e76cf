// The kernel table: for each WGSL module in kernels/, its storage bindings (generated from the file's
// spec block), the features it needs, its typed uniform packer, and how to turn defines into a
// compiled variant.
import type { OptionalFeature } from './backend/device.js';
import type { CompiledKernel, Runtime } from './backend/runtime.js';
import { paramLayouts, specifiedKernels, wgslSources, type ParamField, type ParamStruct, type ParamValues, type WgslName } from './kernels.generated.js';

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
export function packParams<S extends ParamStruct>(struct: S, values: ParamValues[S]): Uint32Array<ArrayBuffer> {
  const layout = paramLayouts[struct];
  const words = paramBlock(Math.max(16, Math.ceil(layout.size / 16) * 16) / 4);
  const given = values as unknown as Record<string, number | readonly number[]>;
  for (const f of layout.fields) {
    const v = given[f.name];
    if (typeof v === 'number') {
      if (f.count !== 1) throw new Error(`internal: Params ${struct}.${f.name} (${f.type}) got ${JSON.stringify(v)}`);
      words[f.offset / 4] = word(struct, f, v);
      continue;
    }
    if (v === undefined || f.count === 1 || v.length > f.count) throw new Error(`internal: Params ${struct}.${f.name} (${f.type}) got ${JSON.stringify(v)}`);
    for (let i = 0; i < v.length; i++) words[(f.offset + Math.floor(i / f.lanes) * f.stride + (i % f.lanes) * 4) / 4] = word(struct, f, v[i]!);
  }
  return words;
}

/** The index of a Params field's first word (for ops that declare words a recorded step moves). */
export function paramWord<S extends ParamStruct>(struct: S, field: keyof ParamValues[S] & string): number {
  const f = paramLayouts[struct].fields.find((x) => x.name === field);
  if (f === undefined) throw new Error(`internal: Params ${struct} has no field ${field}`);
  return f.offset / 4;
}

/**
 * Uniform blocks are views of a shared arena, each its own never-reused range: a small ArrayBuffer of
 * its own costs more to allocate than the packing (every dispatch packs one). A full arena is left to
 * the blocks that view it and a new one begins.
 */
const ARENA_WORDS = 16384;
let arena = new Uint32Array(ARENA_WORDS);
let arenaUsed = 0;

/** A zeroed block of `count` words. */
function paramBlock(count: number): Uint32Array<ArrayBuffer> {
  if (arenaUsed + count > ARENA_WORDS) {
    arena = new Uint32Array(ARENA_WORDS);
    arenaUsed = 0;
  }
  const block = arena.subarray(arenaUsed, arenaUsed + count);
  arenaUsed += count;
  return block;
}

const f32Word = new Float32Array(1);
const f32Bits = new Uint32Array(f32Word.buffer);

/** One 32-bit word of a uniform field, as the bits WGSL reads (little-endian, as every WebGPU host is). */
function word(struct: string, f: ParamField, x: number): number {
  if (f.kind === 'f32') {
    f32Word[0] = x;
    return f32Bits[0]!;
  }
  if (!Number.isInteger(x)) throw new Error(`internal: Params ${struct}.${f.name} (${f.type}) got ${x}`);
  return x >>> 0;
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
  const key = variantKey(name, defines);
  return rt.kernel(key, kernelSource(name, defines, key), key);
}

/** A node of the tree of variant keys: from a name, each define's name then value in the order given. */
interface KeyNode {
  next: Map<string, KeyNode>;
  key: string | null;
}

const variantKeys: KeyNode = { next: new Map(), key: null };
const MAX_VARIANT_KEYS = 16384;
let variantKeyCount = 0;

/**
 * The key of a kernel variant, `name(A=x,B=y)` with the defines sorted by name, as the runtime keys its
 * pipelines. Found in a tree by the strings given (a dispatch builds and sorts nothing once its
 * variant has been seen).
 */
export function variantKey(name: string, defines: Defines): string {
  let node = step(variantKeys, name);
  for (const k in defines) node = step(step(node, k), defines[k]!);
  if (node.key === null) {
    const keys = Object.keys(defines).sort();
    node.key = `${name}(${keys.map((k) => `${k}=${defines[k]}`).join(',')})`;
    if (++variantKeyCount > MAX_VARIANT_KEYS) {
      variantKeys.next.clear();
      variantKeyCount = 0;
    }
  }
  return node.key;
}

function step(node: KeyNode, s: string): KeyNode {
  let n = node.next.get(s);
  if (n === undefined) node.next.set(s, (n = { next: new Map(), key: null }));
  return n;
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
