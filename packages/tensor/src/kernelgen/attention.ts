// The WGSL the attention kernels are compiled with: v1's element loaders and storers, and v2's layout
// for an adapter (subgroup size, rows and columns per lane, rows kept or re-read) with its sharing
// steps unrolled here, since subgroupBroadcast takes only constant lane indices.
import type { DeviceInfo } from '../backend/device.js';
import type { Defines } from '../kernels.js';

/** Subgroup sizes v2 is written for; v2 keeps at most V2_MAX_DL vec4 columns of D per lane. */
const V2_SUBGROUP_SIZES = [4, 8, 16, 32];
const V2_MAX_DL = 4;
/** Query (or key) rows per v2 workgroup: at least 16, a multiple of the subgroup size. */
const V2_MIN_ROWS = 16;
/**
 * 32-bit values a lane of a 32-wide subgroup may hold in private arrays: the largest v2 layout an
 * NVIDIA H200 created (dkv at D = 128: 800); dq at D = 256 (1088) failed there with too many registers
 * per thread. Narrower subgroups (lavapipe's 8) keep whole rows at every D v2 supports.
 */
const GPU_PRIVATE_BUDGET = 800;

/** The v2 kernels. */
export type V2Kernel = 'attention_forward.v2' | 'attention_backward_dq.v2' | 'attention_backward_dkv.v2';

/**
 * A v2 layout: `sg` lanes, `rpl` rows per lane (TM = sg rpl rows a workgroup), `dl` vec4 columns of D
 * per lane, and whether each lane keeps its rows of q (or k) in private arrays or re-reads them.
 */
export interface V2Layout {
  sg: number;
  rpl: number;
  dl: number;
  keepRows: boolean;
}

let forcedKeepRows: boolean | null = null;

/** Forces rows kept (true) or re-read (false) in every v2 layout, or the adapter's choice (null); for tests. */
export function setV2KeepRows(keep: boolean | null): void {
  forcedKeepRows = keep;
}

/** The subgroup size v2 can rely on, or 0: the subgroups feature and one reported size it is written for. */
function v2SubgroupSize(info: DeviceInfo): number {
  if (!info.features.has('subgroups')) return 0;
  const sg = info.subgroupMinSize;
  return sg > 0 && sg === info.subgroupMaxSize && V2_SUBGROUP_SIZES.includes(sg) ? sg : 0;
}

/** 32-bit values one lane of `kernel` holds in private arrays (rows, accumulators, scores, row statistics). */
export function v2PrivateValues(kernel: V2Kernel, l: V2Layout): number {
  const tm = l.sg * l.rpl;
  const rows = l.keepRows ? l.rpl * l.sg * l.dl * 4 : 0;
  if (kernel === 'attention_forward.v2') return rows + tm * l.dl * 4 + tm * 4 + 2 * tm;
  if (kernel === 'attention_backward_dq.v2') return 2 * rows + tm * l.dl * 4 + 2 * tm * 4 + 2 * tm;
  return 2 * rows + 2 * tm * l.dl * 4 + 2 * tm * 4 + tm;
}

/**
 * The v2 layout of `kernel` for head dim D on this adapter, or null where v2 cannot run: rows kept in
 * private arrays unless that would pass a GPU's register budget, then re-read; null past it either way.
 */
export function v2Layout(info: DeviceInfo, D: number, kernel: V2Kernel): V2Layout | null {
  const sg = v2SubgroupSize(info);
  if (sg === 0 || D % (4 * sg) !== 0) return null;
  const dl = D / (4 * sg);
  if (dl > V2_MAX_DL) return null;
  const rpl = Math.max(1, V2_MIN_ROWS / sg);
  const budget = sg >= 32 ? GPU_PRIVATE_BUDGET : Infinity;
  for (const keepRows of forcedKeepRows === null ? [true, false] : [forcedKeepRows]) {
    const l = { sg, rpl, dl, keepRows };
    if (v2PrivateValues(kernel, l) <= budget) return l;
  }
  return null;
}

/** The cache key of a v2 kernel variant. */
export function v2Key(kernel: V2Kernel, dtype: string, l: V2Layout): string {
  return `${kernel}(DL=${l.dl},KEEP=${l.keepRows},RPL=${l.rpl},SG=${l.sg},T=${dtype})`;
}

/**
 * A term of a sharing step over D: `b0..b3` are column d4 of the lane's 4 block rows of `buffer`
 * (starting at the vec4<u32> `rows`) transposed; `a` names the lane's own rows, `load` reads its row t at d4.
 */
interface RowTerm {
  a: string;
  acc: string;
  b: string;
  buffer: string;
  rows: string;
  load: (t: number) => string;
}

/**
 * v2's sharing step over D: for each of this lane's rows t and each lane j (a constant, as
 * subgroupBroadcast needs), acc[t sg + j] += (a[t D4 + d4] from lane j) . [b0; b1; b2; b3].
 */
function shareRows(sg: number, rpl: number, terms: RowTerm[]): string {
  const lines: string[] = [];
  for (const { b, buffer, rows } of terms) {
    for (const [n, c] of ['x', 'y', 'z', 'w'].entries()) lines.push(`      let ${b}t${n} = vec4<f32>(${buffer}[${rows}.${c} + d4]);`);
    for (const [n, c] of ['x', 'y', 'z', 'w'].entries()) {
      lines.push(`      let ${b}${n} = vec4<f32>(${b}t0.${c}, ${b}t1.${c}, ${b}t2.${c}, ${b}t3.${c});`);
    }
  }
  for (let t = 0; t < rpl; t++) {
    for (const { a, load } of terms) lines.push(`      let ${a}${t} = ${load(t)};`);
    for (let j = 0; j < sg; j++) {
      const r = t * sg + j;
      for (const { a, acc, b } of terms) {
        lines.push(
          `      { let x = subgroupBroadcast(${a}${t}, ${j}u); ${acc}[${r}] = fma(vec4<f32>(x.w), ${b}3, fma(vec4<f32>(x.z), ${b}2, fma(vec4<f32>(x.y), ${b}1, fma(vec4<f32>(x.x), ${b}0, ${acc}[${r}])))); }`,
        );
      }
    }
  }
  return lines.join('\n');
}

/**
 * v2's sharing step over a block of 4 sg rows of `src` (keys or queries): for each lane g (a constant),
 * every lane loads its DL vec4 columns of rows 4g .. 4g + 3 of the block, and for each output row r
 * acc[r DL + u] += (p[r] from lane g) . [those rows]. The loop over rows stays a loop: unrolling it too
 * made the shader minutes to compile on llvmpipe.
 */
function shareCols(sg: number, dl: number, rowBase: (x: number) => string, terms: { p: string; acc: string; src: string }[]): string {
  const lines: string[] = [];
  for (let g = 0; g < sg; g++) {
    lines.push('    {');
    for (let n = 0; n < 4; n++) lines.push(`      let row${n} = ${rowBase(4 * g + n)};`);
    for (const { src } of terms) {
      for (let n = 0; n < 4; n++) {
        for (let u = 0; u < dl; u++) lines.push(`      let ${src}${n}_${u} = vec4<f32>(${src}[row${n} + ${u * sg}u]);`);
      }
    }
    lines.push('      for (var r = 0u; r < TM; r++) {');
    for (const { p, acc, src } of terms) {
      lines.push(`        { let x = subgroupBroadcast(${p}[r], ${g}u);`);
      for (let u = 0; u < dl; u++) {
        const i = `r * DL + ${u}u`;
        lines.push(
          `          ${acc}[${i}] = fma(vec4<f32>(x.w), ${src}3_${u}, fma(vec4<f32>(x.z), ${src}2_${u}, fma(vec4<f32>(x.y), ${src}1_${u}, fma(vec4<f32>(x.x), ${src}0_${u}, ${acc}[${i}]))));`,
        );
      }
      lines.push('        }');
    }
    lines.push('      }', '    }');
  }
  return lines.join('\n');
}

/**
 * A lane's row t at column d4: from its private array `a` (rows kept), or re-read from `buffer` at
 * row `first + t sg + lane` of `count` (clamped, as the kept rows are), times `scale` when given.
 */
function laneRow(l: V2Layout, a: string, buffer: string, head: string, first: string, count: string, scale = ''): (t: number) => string {
  if (l.keepRows) return (t) => `${a}[${t}u * D4 + d4]`;
  return (t) => `vec4<f32>(${buffer}[${head} + min(${first} + ${t}u * SG + lane, ${count} - 1u) * D4 + d4])${scale}`;
}

/** The defines of a v2 kernel variant: dtype, layout constants and the unrolled sharing steps. */
export function v2Defines(kernel: V2Kernel, dtype: string, l: V2Layout): Defines {
  const base = { T: dtype, SG: String(l.sg), RPL: String(l.rpl), DL: String(l.dl), KEEP_ROWS: String(l.keepRows) };
  const keyRows = (x: number) => `blk.kv_head + min(j0 + ${x}u, p.S - 1u) * D4 + lane`;
  if (kernel === 'attention_forward.v2') {
    return {
      ...base,
      SHARE_S: shareRows(l.sg, l.rpl, [
        { a: 'qr', acc: 'sc', b: 'kb', buffer: 'k', rows: 'keys.rows', load: laneRow(l, 'qr', 'q', 'blk.q_head', 'blk.i0', 'p.T', ' * p.scale') },
      ]),
      SHARE_PV: shareCols(l.sg, l.dl, keyRows, [{ p: 'sc', acc: 'acc', src: 'v' }]),
    };
  }
  if (kernel === 'attention_backward_dq.v2') {
    return {
      ...base,
      SHARE_S: shareRows(l.sg, l.rpl, [
        { a: 'qr', acc: 'sc', b: 'kb', buffer: 'k', rows: 'keys.rows', load: laneRow(l, 'qr', 'q', 'blk.q_head', 'blk.i0', 'p.T', ' * p.scale') },
        { a: 'dor', acc: 'dp', b: 'vb', buffer: 'v', rows: 'keys.rows', load: laneRow(l, 'dor', 'd_o', 'blk.q_head', 'blk.i0', 'p.T') },
      ]),
      SHARE_DQ: shareCols(l.sg, l.dl, keyRows, [{ p: 'sc', acc: 'acc', src: 'k' }]),
    };
  }
  return {
    ...base,
    SHARE_S: shareRows(l.sg, l.rpl, [
      { a: 'kr', acc: 'sc', b: 'kb', buffer: 'q', rows: 'qrow', load: laneRow(l, 'kr', 'k', 'kv_head', 'kg.j0', 'p.S', ' * p.scale') },
      { a: 'vr', acc: 'dp', b: 'vb', buffer: 'd_o', rows: 'qrow', load: laneRow(l, 'vr', 'v', 'kv_head', 'kg.j0', 'p.S') },
    ]),
    SHARE_DKV: shareCols(l.sg, l.dl, (x) => `q_head + min(r0 + ${x}u, p.T - 1u) * D4 + lane`, [
      { p: 'sc', acc: 'dv_acc', src: 'd_o' },
      { p: 'dp', acc: 'dk_acc', src: 'q' },
    ]),
  };
}

/**
 * The defines of a v1 kernel variant: storage element type, private row size, and IO: for each name,
 * `load_NAME(e, end)` (four elements from element e of a row ending at `end`, zeros past it) or
 * `store_NAME(e, end, x)` (none past it), vec4 loads and stores when D % 4 == 0.
 */
export function v1Defines(dtype: string, D: number, loads: string[], stores: string[]): Defines {
  // Kept: every call of a kernel asks (decoding, twice a layer), and the same strings find its variant key fastest.
  const key = `${dtype} ${D % 4 === 0 ? 4 : 1} ${D <= 64 ? 16 : 64} ${loads.join()} ${stores.join()}`;
  let defines = v1DefinesKept.get(key);
  if (defines === undefined) v1DefinesKept.set(key, (defines = buildV1Defines(dtype, D, loads, stores)));
  return defines;
}

const v1DefinesKept = new Map<string, Defines>();

function buildV1Defines(dtype: string, D: number, loads: string[], stores: string[]): Defines {
  const vec4 = D % 4 === 0;
  const io = [
    ...loads.map((name) => {
      const body = vec4
        ? `return vec4<f32>(${name}[e / 4u]);`
        : `var r = vec4<f32>(0.0); for (var t = 0u; t < 4u; t++) { if (e + t < end) { r[t] = f32(${name}[e + t]); } } return r;`;
      return `fn load_${name}(e: u32, end: u32) -> vec4<f32> { ${body} }`;
    }),
    ...stores.map((name) => {
      const body = vec4
        ? `${name}[e / 4u] = vec4<T>(x);`
        : `for (var t = 0u; t < 4u; t++) { if (e + t < end) { ${name}[e + t] = T(x[t]); } }`;
      return `fn store_${name}(e: u32, end: u32, x: vec4<f32>) { ${body} }`;
    }),
  ];
  return { T: dtype, ELEM: vec4 ? 'vec4<T>' : 'T', DMAX4: D <= 64 ? '16' : '64', IO: io.join('\n') };
}
