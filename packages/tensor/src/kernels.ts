// The kernel table: for each WGSL module in kernels/, its storage bindings (checked against the
// file by a test), the features it needs, and how to turn defines into a compiled variant.
import type { OptionalFeature } from './backend/device.js';
import type { CompiledKernel, Runtime } from './backend/runtime.js';
import { wgslSources, type WgslName } from './kernels.generated.js';

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

const read = (name: string): BindingSpec => ({ name, access: 'read' });
const write = (name: string): BindingSpec => ({ name, access: 'read_write' });

/** Every kernel file, by name. A file without an entry here fails to compile (mapped over WgslName). */
export const kernelSpecs: { [K in WgslName]: KernelSpec } = {
  unary: { uniform: true, bindings: [read('x'), write('y')] },
  binary: { uniform: true, bindings: [read('a'), read('b'), write('out')] },
  where: { uniform: true, bindings: [read('cond'), read('a'), read('b'), write('out')] },
  fill: { uniform: true, bindings: [write('y')] },
  copy_strided: { uniform: true, bindings: [read('src'), write('dst')] },
  reduce_sum: { uniform: true, bindings: [read('x'), write('y')] },
  reduce_max: { uniform: true, bindings: [read('x'), write('y'), write('idx')] },
  scatter_max_grad: { uniform: true, bindings: [read('g'), read('idx'), write('dx')] },
  matmul: { uniform: true, bindings: [read('a'), read('b'), write('c')] },
  'matmul.v2': { uniform: true, bindings: [read('a'), read('b'), write('c')] },
  'matmul.v3': { uniform: true, bindings: [read('a'), read('b'), write('c')], features: ['subgroups'] },
  matmul_pack: { uniform: true, bindings: [read('b'), write('packed')] },
  matvec: { uniform: true, bindings: [read('x'), read('w'), write('y')] },
  matmul_int8: { uniform: true, bindings: [read('a'), read('codes'), read('absmax'), write('c')], features: ['subgroups'] },
  matmul_nf4: {
    uniform: true,
    bindings: [read('a'), read('codes'), read('qabs'), read('scales'), read('dyn'), write('c')],
    features: ['subgroups'],
  },
  attention_forward: {
    uniform: true,
    bindings: [read('q'), read('k'), read('v'), read('mask'), write('o'), write('lse')],
  },
  'attention_forward.v2': {
    uniform: true,
    bindings: [read('q'), read('k'), read('v'), read('mask'), write('o'), write('lse')],
    features: ['subgroups'],
  },
  attention_backward_delta: { uniform: true, bindings: [read('o'), read('d_o'), read('lse'), write('stats')] },
  attention_backward_dq: {
    uniform: true,
    bindings: [read('q'), read('k'), read('v'), read('mask'), read('d_o'), read('stats'), write('dq')],
  },
  attention_backward_dkv: {
    uniform: true,
    bindings: [read('q'), read('k'), read('v'), read('mask'), read('d_o'), read('stats'), write('dk'), write('dv')],
  },
  'attention_backward_dq.v2': {
    uniform: true,
    bindings: [read('q'), read('k'), read('v'), read('mask'), read('d_o'), read('stats'), write('dq')],
    features: ['subgroups'],
  },
  'attention_backward_dkv.v2': {
    uniform: true,
    bindings: [read('q'), read('k'), read('v'), read('mask'), read('d_o'), read('stats'), write('dk'), write('dv')],
    features: ['subgroups'],
  },
  attention_decode_partial: {
    uniform: true,
    bindings: [read('q'), read('k'), read('v'), read('mask'), write('part_acc'), write('part_ml')],
  },
  attention_decode_combine: { uniform: true, bindings: [read('part_acc'), read('part_ml'), write('o'), write('lse')] },
  softmax_forward: { uniform: true, bindings: [read('x'), write('y')] },
  softmax_backward: { uniform: true, bindings: [read('y'), read('dy'), write('dx')] },
  rmsnorm_forward: { uniform: true, bindings: [read('x'), read('w'), write('y'), write('rstd')] },
  rmsnorm_backward: { uniform: true, bindings: [read('x'), read('w'), read('dy'), read('rstd'), write('dx')] },
  rmsnorm_dweight: { uniform: true, bindings: [read('x'), read('dy'), read('rstd'), write('dw')] },
  rope: { uniform: true, bindings: [read('x'), read('positions'), read('cos_t'), read('sin_t'), write('out')] },
  embedding_forward: { uniform: true, bindings: [read('ids'), read('table'), write('out')] },
  embedding_backward_csr: {
    uniform: true,
    bindings: [read('dy'), read('uniq'), read('offsets'), read('positions'), write('dtable')],
  },
  embedding_backward_scan: { uniform: true, bindings: [read('dy'), read('ids'), write('dtable')] },
  cross_entropy_forward: { uniform: true, bindings: [read('x'), read('targets'), write('loss'), write('lse'), write('valid')] },
  cross_entropy_reduce: { uniform: true, bindings: [read('loss'), read('valid'), write('out'), write('count')] },
  cross_entropy_backward: {
    uniform: true,
    bindings: [read('x'), read('targets'), read('lse'), read('g'), read('count'), write('dx')],
  },
  dropout: { uniform: true, bindings: [read('x'), write('y')] },
  swiglu_forward: { uniform: true, bindings: [read('gate'), read('up'), write('y')] },
  swiglu_backward: { uniform: true, bindings: [read('gate'), read('up'), read('dy'), write('d_gate'), write('d_up')] },
  adamw: { uniform: true, bindings: [write('param'), read('grad'), write('m'), write('v')] },
  sgd: { uniform: true, bindings: [write('param'), read('grad'), write('buf')] },
  clip_sumsq: { uniform: true, bindings: [read('g'), write('partial')] },
  clip_norm: { uniform: true, bindings: [read('partial'), write('out')] },
  clip_scale: { uniform: true, bindings: [write('g'), read('coef')] },
};

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
  return rt.kernel(key, preprocessCached(name, defines, key), key);
}

const sourceCache = new Map<string, string>();
function preprocessCached(name: WgslName, defines: Defines, key: string): string {
  let s = sourceCache.get(key);
  if (s === undefined) sourceCache.set(key, (s = preprocess(name, defines)));
  return s;
}

/** Workgroup counts for `threads` threads in groups of `size`, folded into 2-D past the per-dimension limit. */
export function grid1d(threads: number, size: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / size));
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

/** Packs a uniform block: scalars are 4-byte words; `vec4`/`arr8` start on 16-byte boundaries. */
export class Params {
  private readonly words: number[] = [];
  private readonly kinds: ('u' | 'f')[] = [];

  u32(...values: number[]): this {
    for (const v of values) {
      this.words.push(v >>> 0);
      this.kinds.push('u');
    }
    return this;
  }

  f32(...values: number[]): this {
    for (const v of values) {
      this.words.push(v);
      this.kinds.push('f');
    }
    return this;
  }

  /** Pads to a 16-byte boundary then writes `n` u32 (zero-filled), e.g. n = 8 for `array<vec4<u32>, 2>`. */
  u32Array(values: readonly number[], n: number): this {
    while (this.words.length % 4 !== 0) this.u32(0);
    if (values.length > n) throw new Error(`internal: ${values.length} values for a uniform array of ${n}`);
    for (let i = 0; i < n; i++) this.u32(values[i] ?? 0);
    return this;
  }

  build(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const u = new Uint32Array(buf);
    const f = new Float32Array(buf);
    this.words.forEach((w, i) => {
      if (this.kinds[i] === 'f') f[i] = w;
      else u[i] = w;
    });
    return buf;
  }
}
