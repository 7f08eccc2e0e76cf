// Reads the spec block of a kernels/*.wgsl file (`//!` lines: its uniform parameter fields and its
// storage bindings), computes the uniform layout by WGSL's rules, and expands the block and the
// `{{include NAME}}` lines into a complete WGSL module.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Parses the `//!` lines of a WGSL source:
 *   //! params                      (or `//! params from NAME`: the params block of kernels/include/NAME.wgsl)
 *   //!   numel: u32                a field per line: name, WGSL type, optional `// comment`
 *   //! bindings
 *   //!   x: array<T> read          a storage binding per line (from binding 1): name, type, read | read_write
 * Returns null when the file has no `//!` line.
 */
export function parseSpec(src, file) {
  const lines = src.split('\n');
  const at = lines.map((l, i) => (l.startsWith('//!') ? i : -1)).filter((i) => i >= 0);
  if (at.length === 0) return null;
  const first = at[0];
  const last = at[at.length - 1];
  if (last - first + 1 !== at.length) throw new Error(`${file}: the //! lines must form one block (lines ${first + 1}-${last + 1})`);
  const spec = { params: null, paramsFrom: null, bindings: null, first, last };
  let section = null;
  for (const i of at) {
    const [body, comment] = splitComment(lines[i].slice(3));
    const text = body.trim();
    if (text === '') continue;
    const where = `${file}:${i + 1}`;
    let m;
    if ((m = /^params(?: from (\w+))?$/.exec(text))) {
      if (spec.params || spec.paramsFrom) throw new Error(`${where}: a second params section`);
      section = 'params';
      if (m[1]) {
        spec.paramsFrom = m[1];
        section = null;
      } else spec.params = [];
    } else if (text === 'bindings') {
      if (spec.bindings) throw new Error(`${where}: a second bindings section`);
      section = 'bindings';
      spec.bindings = [];
    } else if (section === 'params' && (m = /^(\w+)\s*:\s*(.+)$/.exec(text))) {
      if (spec.params.some((f) => f.name === m[1])) throw new Error(`${where}: field ${m[1]} declared twice`);
      spec.params.push({ name: m[1], type: m[2].trim(), comment, layout: typeLayout(m[2].trim(), where) });
    } else if (section === 'bindings' && (m = /^(\w+)\s*:\s*(.+?)\s+(read|read_write)$/.exec(text))) {
      if (spec.bindings.some((b) => b.name === m[1])) throw new Error(`${where}: binding ${m[1]} declared twice`);
      spec.bindings.push({ name: m[1], type: m[2], access: m[3], comment });
    } else {
      throw new Error(`${where}: cannot read \`${text}\`; expected \`params\`, \`params from NAME\`, \`bindings\`, a field \`name: type\` or a binding \`name: type read|read_write\``);
    }
  }
  if (spec.params && spec.params.length === 0) throw new Error(`${file}: the params section declares no field`);
  return spec;
}

function splitComment(s) {
  const i = s.indexOf('//');
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 2).trim()];
}

const SCALARS = { u32: 4, i32: 4, f32: 4 };

/**
 * Alignment and size of a uniform-space type, with how the packer lays out its values:
 * `kind` (the scalar), `lanes` (scalars per element) and `stride` (bytes between elements).
 */
function typeLayout(type, where) {
  if (SCALARS[type]) return { align: 4, size: 4, kind: type, lanes: 1, count: 1, stride: 4 };
  let m = /^vec([234])<(\w+)>$/.exec(type);
  if (m && SCALARS[m[2]]) {
    const n = Number(m[1]);
    return { align: n === 2 ? 8 : 16, size: 4 * n, kind: m[2], lanes: n, count: n, stride: 4 * n };
  }
  m = /^array<(.+),\s*(\d+)>$/.exec(type);
  if (m) {
    const el = typeLayout(m[1].trim(), where);
    if (el.count !== el.lanes) throw new Error(`${where}: nested arrays are not supported in a uniform (${type})`);
    const stride = Math.ceil(el.size / el.align) * el.align;
    if (stride % 16 !== 0) throw new Error(`${where}: ${type} has an element stride of ${stride} bytes; a uniform array needs a multiple of 16 (use vec4 elements)`);
    const n = Number(m[2]);
    return { align: Math.max(16, el.align), size: stride * n, kind: el.kind, lanes: el.lanes, count: el.lanes * n, stride };
  }
  throw new Error(`${where}: uniform field type ${type} is not supported (u32, i32, f32, vecN of them, array<vec4<...>, N>)`);
}

/** Offsets of the fields and the struct's size, by WGSL's layout rules (the packer writes to these). */
export function structLayout(fields) {
  let offset = 0;
  let align = 4;
  const out = fields.map((f) => {
    const l = f.layout;
    offset = Math.ceil(offset / l.align) * l.align;
    const field = { name: f.name, type: f.type, kind: l.kind, offset, count: l.count, lanes: l.lanes, stride: l.stride };
    offset += l.size;
    align = Math.max(align, l.align);
    return field;
  });
  return { size: Math.ceil(offset / align) * align, fields: out };
}

/** The WGSL text of a Params struct and the binding declarations that replace a spec block. */
export function declarations(params, bindings) {
  const lines = [];
  if (params) {
    lines.push('struct Params {');
    for (const f of params) lines.push(`  ${f.name}: ${f.type},${f.comment ? ` // ${f.comment}` : ''}`);
    lines.push('}', '', '@group(0) @binding(0) var<uniform> p: Params;');
  }
  (bindings ?? []).forEach((b, i) => {
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: ${b.type};${b.comment ? ` // ${b.comment}` : ''}`);
  });
  return lines;
}

/**
 * Replaces each `{{include NAME}}` line with kernels/include/NAME.wgsl, each line indented as the include
 * line is (statements shared inside a function keep its indentation). Its `//!` lines (spec) and `///`
 * lines (what the file is, for its reader) stay out of the module.
 */
export function expandIncludes(src, includeDir, file, seen = []) {
  return src.replace(/^([ \t]*)\{\{include (\w+)\}\}[ \t]*$/gm, (_, indent, name) => {
    if (seen.includes(name)) throw new Error(`${file}: include cycle ${[...seen, name].join(' -> ')}`);
    const lines = readInclude(includeDir, name, file).split('\n').filter((l) => !l.startsWith('//!') && !l.startsWith('///'));
    const body = expandIncludes(lines.join('\n').replace(/\n+$/, ''), includeDir, `include/${name}.wgsl`, [...seen, name]);
    return indent === '' ? body : body.split('\n').map((l) => (l === '' ? l : indent + l)).join('\n');
  });
}

export function readInclude(includeDir, name, file) {
  const path = join(includeDir, `${name}.wgsl`);
  if (!existsSync(path)) throw new Error(`${file}: no include ${name} (expected kernels/include/${name}.wgsl)`);
  return readFileSync(path, 'utf8');
}
