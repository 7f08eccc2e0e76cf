// The typed uniform packers against the Params structs of the generated WGSL: offsets, alignment and
// size computed here from the WGSL specification's layout rules (not from the generator), then every
// field packed with a distinct value and read back at those offsets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelSpecs, packParams, paramLayouts, specifiedKernels, wgslSources, type ParamStruct, type ParamValues } from '@huatuo/tensor/internal';

interface WgslType {
  align: number;
  size: number;
  /** Scalars of one element, the element count and the byte stride between elements. */
  scalar: string;
  lanes: number;
  elements: number;
  stride: number;
}

const roundUp = (k: number, n: number) => Math.ceil(n / k) * k;

/** AlignOf and SizeOf in the uniform address space (WGSL spec, "Alignment and Size"). */
function uniformType(t: string): WgslType {
  if (t === 'u32' || t === 'i32' || t === 'f32') return { align: 4, size: 4, scalar: t, lanes: 1, elements: 1, stride: 4 };
  const vec = /^vec([234])<(u32|i32|f32)>$/.exec(t);
  if (vec) {
    const n = Number(vec[1]);
    const align = { 2: 8, 3: 16, 4: 16 }[n]!;
    return { align, size: 4 * n, scalar: vec[2]!, lanes: n, elements: 1, stride: 4 * n };
  }
  const arr = /^array<(.+),\s*(\d+)>$/.exec(t);
  if (arr) {
    const e = uniformType(arr[1]!.trim());
    const stride = roundUp(e.align, e.size);
    assert.equal(stride % 16, 0, `uniform array ${t}: element stride ${stride} is not a multiple of 16`);
    const n = Number(arr[2]);
    return { align: roundUp(16, e.align), size: n * stride, scalar: e.scalar, lanes: e.lanes, elements: n, stride };
  }
  throw new Error(`no uniform layout for ${t}`);
}

interface Member {
  name: string;
  type: WgslType;
  offset: number;
}

/** The members of `struct Params` in a WGSL module, at their offsets, and the struct's size. */
function parseParams(src: string): { members: Member[]; size: number } | null {
  const m = /struct Params \{([^}]*)\}/.exec(src);
  if (!m) return null;
  let end = 0;
  let align = 1;
  const members: Member[] = [];
  for (const line of m[1]!.split('\n')) {
    const f = /^\s*(\w+)\s*:\s*(.+?),\s*(\/\/.*)?$/.exec(line);
    if (!f) continue;
    const type = uniformType(f[2]!);
    const offset = roundUp(type.align, end);
    members.push({ name: f[1]!, type, offset });
    end = offset + type.size;
    align = Math.max(align, type.align);
  }
  return { members, size: roundUp(align, end) };
}

const withParams = Object.entries(specifiedKernels).filter(([, k]) => k.params !== null) as [string, { params: ParamStruct }][];

test('every kernel with a spec block reads its uniform at binding 0 as the generated Params struct', () => {
  assert.ok(withParams.length >= 30, `only ${withParams.length} kernels declare params`);
  for (const [name, k] of withParams) {
    const src = wgslSources[name as keyof typeof wgslSources];
    assert.match(src, /@group\(0\) @binding\(0\) var<uniform> p: Params;/, `${name}: no uniform Params at binding 0`);
    assert.equal(kernelSpecs[name as keyof typeof kernelSpecs].uniform, true, name);
    assert.ok(parseParams(src), `${name}: no struct Params in the generated module`);
    assert.ok(paramLayouts[k.params], `${name}: no layout for ${k.params}`);
  }
});

test("every packer's layout equals its struct's offsets and size by WGSL's uniform layout rules", () => {
  for (const [name, k] of withParams) {
    const parsed = parseParams(wgslSources[name as keyof typeof wgslSources])!;
    const layout = paramLayouts[k.params];
    assert.equal(layout.size, parsed.size, `${name}: struct size`);
    assert.deepEqual(
      layout.fields.map((f) => [f.name, f.offset, f.kind, f.lanes, f.count, f.stride]),
      parsed.members.map((m) => [m.name, m.offset, m.type.scalar, m.type.lanes, m.type.lanes * m.type.elements, m.type.stride]),
      `${name}: fields of ${k.params}`,
    );
  }
});

test('every packer writes each field at its WGSL offset and leaves padding zero', () => {
  for (const [name, k] of withParams) {
    const parsed = parseParams(wgslSources[name as keyof typeof wgslSources])!;
    const values: Record<string, number | number[]> = {};
    let next = 1;
    for (const m of parsed.members) {
      const n = m.type.lanes * m.type.elements;
      const vals = Array.from({ length: n }, () => (m.type.scalar === 'f32' ? next++ + 0.5 : m.type.scalar === 'i32' ? -next++ : next++));
      values[m.name] = n === 1 && m.type.elements === 1 && m.type.lanes === 1 ? vals[0]! : vals;
    }
    const buf = packParams(k.params, values as unknown as ParamValues[typeof k.params]);
    assert.ok(buf.byteLength >= parsed.size && buf.byteLength % 16 === 0, `${name}: buffer of ${buf.byteLength} bytes for a ${parsed.size}-byte struct`);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const written = new Set<number>();
    for (const m of parsed.members) {
      const given = values[m.name]!;
      const list = typeof given === 'number' ? [given] : given;
      list.forEach((want, i) => {
        const at = m.offset + Math.floor(i / m.type.lanes) * m.type.stride + (i % m.type.lanes) * 4;
        const got = m.type.scalar === 'f32' ? view.getFloat32(at, true) : m.type.scalar === 'i32' ? view.getInt32(at, true) : view.getUint32(at, true);
        assert.equal(got, want, `${name}: ${m.name}[${i}] at byte ${at}`);
        written.add(at);
      });
    }
    for (let at = 0; at < buf.byteLength; at += 4) {
      if (!written.has(at)) assert.equal(view.getUint32(at, true), 0, `${name}: padding at byte ${at} is not zero`);
    }
  }
});

test('a vector or array field takes fewer values than its size (the rest zero), never more', () => {
  const buf = packParams('unary', { numel: 5, rank: 2, x_offset: 3, c: 0, shape: [2, 3], x_strides: [3, 1] });
  const u = new Uint32Array(buf);
  assert.deepEqual([...u.slice(4, 12)], [2, 3, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...u.slice(12, 20)], [3, 1, 0, 0, 0, 0, 0, 0]);
  assert.throws(
    () => packParams('unary', { numel: 5, rank: 9, x_offset: 0, c: 0, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], x_strides: [] }),
    /internal: Params unary\.shape/,
  );
});

test('every packed block is its own zeroed range: later blocks never change an earlier one', () => {
  const first = packParams('unary', { numel: 7, rank: 1, x_offset: 0, c: 0, shape: [7], x_strides: [1] });
  const kept = [...first];
  // Many blocks, past any shared storage the packer may hand out ranges of.
  for (let i = 0; i < 50_000; i++) {
    const b = packParams('unary', { numel: i, rank: 0, x_offset: 0, c: 0, shape: [], x_strides: [] });
    assert.ok(b[0] === i && b.slice(1).every((w) => w === 0), `block ${i}: ${[...b]}`);
  }
  assert.deepEqual([...first], kept);
});

test('a missing field or a fractional integer fails at run time too (the type check catches it first)', () => {
  assert.throws(() => packParams('fill', { numel: 1, mode: 0, start: 0 } as unknown as ParamValues['fill']), /internal: Params fill\.step/);
  assert.throws(() => packParams('fill', { numel: 1.5, mode: 0, start: 0, step: 0 }), /internal: Params fill\.numel \(u32\) got 1\.5/);
});

/** Never called: the type check (tsc -p test) fails unless each line below is an error. */
export function misnamedFieldsDoNotCompile(): void {
  // @ts-expect-error a field is missing
  packParams('fill', { numel: 1, mode: 0, start: 0 });
  // @ts-expect-error a field is misnamed
  packParams('fill', { numel: 1, mode: 0, start: 0, stepp: 0 });
  // @ts-expect-error a scalar field given a list
  packParams('fill', { numel: [1], mode: 0, start: 0, step: 0 });
}
