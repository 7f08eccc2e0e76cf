// WGSL generated on the host for the matmul family: code that WGSL cannot express with loops
// because it needs constant subgroup lanes or constant accumulator indices.

/**
 * The v3 sharing step, unrolled (the SHARE placeholder of matmul.v3.wgsl): for each of the
 * `rows / sg` rows a lane loads, every lane j's vec4 of a is broadcast to the subgroup and
 * multiplied into accumulator `i * sg + j`. subgroupBroadcast needs constant lanes, and
 * accumulators indexed by loop counters spill out of registers.
 */
export function shareStep(sg: number, rows: number): string {
  const lines: string[] = [];
  for (let i = 0; i < rows / sg; i++) {
    lines.push(`    {`, `      let av = vec4<f32>(a[a_rows[${i}] + k4]);`);
    for (let j = 0; j < sg; j++) {
      const r = i * sg + j;
      lines.push(
        `      { let x = subgroupBroadcast(av, ${j}u); acc[${r}] = fma(vec4<f32>(x.w), b3, fma(vec4<f32>(x.z), b2, fma(vec4<f32>(x.y), b1, fma(vec4<f32>(x.x), b0, acc[${r}])))); }`,
      );
    }
    lines.push(`    }`);
  }
  return lines.join('\n');
}

/** The shape of a subgroup-matrix kernel: matrix SM x SN x SK, workgroup tile TM x TN, subgroup tile WM x WN. */
export interface SgmatShape {
  sm: number;
  sn: number;
  sk: number;
  tm: number;
  tn: number;
  wm: number;
  wn: number;
  /** k step staged per barrier. */
  bk: number;
}

/**
 * How a staging kernel (v4, sgmat) reads its operands: `a` along k (`k`, a is [m][k] in memory) or m (`m`);
 * `b` along n (`n`, b is [k][n]) or k (`k`); `vec` 4 when every staged run is aligned to 4 elements (vec4 loads).
 */
export interface StagingLayout {
  a: 'k' | 'm';
  b: 'n' | 'k';
  vec: 1 | 4;
}

/** Where a staged slice of one operand comes from: `outer` runs of `inner` contiguous elements per k step. */
interface StagedSlice {
  name: 'a' | 'b';
  outer: number;
  inner: number;
  /** WGSL expressions: the slice's first outer and inner index, their limits and element strides. */
  at: { outer: string; inner: string; outerLim: string; innerLim: string; outerStride: string; innerStride: string };
  /** WGSL statements that store register `r` (V elements from (o, i) on) in workgroup memory. */
  store: (r: string) => string[];
}

/** The slices of a and b a layout stages, each along its contiguous dimension, `tm` x `bk` and `bk` x `tn`. */
function slices(layout: StagingLayout, tm: number, tn: number, bk: number): [Omit<StagedSlice, 'store'>, Omit<StagedSlice, 'store'>] {
  const a =
    layout.a === 'k'
      ? { name: 'a' as const, outer: tm, inner: bk, at: { outer: 'm0', inner: 'k0', outerLim: 'p.M', innerLim: 'p.K', outerStride: 'p.a_sm', innerStride: 'p.a_sk' } }
      : { name: 'a' as const, outer: bk, inner: tm, at: { outer: 'k0', inner: 'm0', outerLim: 'p.K', innerLim: 'p.M', outerStride: 'p.a_sk', innerStride: 'p.a_sm' } };
  const b =
    layout.b === 'n'
      ? { name: 'b' as const, outer: bk, inner: tn, at: { outer: 'k0', inner: 'n0', outerLim: 'p.K', innerLim: 'p.N', outerStride: 'p.b_sk', innerStride: 'p.b_sn' } }
      : { name: 'b' as const, outer: tn, inner: bk, at: { outer: 'n0', inner: 'k0', outerLim: 'p.N', innerLim: 'p.K', outerStride: 'p.b_sn', innerStride: 'p.b_sk' } };
  return [a, b];
}

/**
 * The unrolled staging of one operand by `threads` threads, V elements each per load: LOAD reads the
 * slice at k0 from global memory into registers `r<name>` (zero outside the operand), STAGE stores them
 * in workgroup memory, so the next slice can be loaded while the current one is multiplied.
 */
function staging(slice: StagedSlice, threads: number, V: number): { load: string[]; stage: string[] } {
  const reg = `r${slice.name}`;
  const perRow = slice.inner / V;
  const count = (slice.outer * slice.inner) / V / threads;
  const at = (body: string[]) => [`    for (var t = 0u; t < ${count}u; t++) {`, `      let e = li + t * ${threads}u;`, `      let o = e / ${perRow}u;`, `      let i = (e % ${perRow}u) * ${V}u;`, ...body, `    }`];
  const x = slice.at;
  const elem = `${slice.name}_base + (${x.outer} + o) * ${x.outerStride} + (${x.inner} + i) * ${x.innerStride}`;
  return {
    load: at([
      `      ${reg}[t] = AV(0.0);`,
      `      if (${x.outer} + o < ${x.outerLim} && ${x.inner} + i < ${x.innerLim}) { ${reg}[t] = ${slice.name}[${V === 4 ? `(${elem}) / 4u` : elem}]; }`,
    ]),
    stage: at(slice.store(`${reg}[t]`)),
  };
}

const LANES = ['x', 'y', 'z', 'w'];

/** The register counts and unrolled LOAD / STAGE code of a staging kernel, as defines. */
function stagingDefines(a: StagedSlice, b: StagedSlice, threads: number, V: number): Record<string, string> {
  const sa = staging(a, threads, V);
  const sb = staging(b, threads, V);
  return {
    A_LOADS: String((a.outer * a.inner) / V / threads),
    B_LOADS: String((b.outer * b.inner) / V / threads),
    LOAD: [...sa.load, ...sb.load].join('\n'),
    STAGE: [...sa.stage, ...sb.stage].join('\n'),
  };
}

/** The shape of a v4 kernel: a `tile` x `tile` block of c per 256 threads, slices of BK = 16 along k. */
export const V4_THREADS = 256;
export const V4_BK = 16;

/** Workgroup bytes of v4 at a tile: two k-major f32 slices of 16 rows, each row padded by 4 elements. */
export function v4Storage(tile: number): number {
  return 2 * V4_BK * (tile + 4) * 4;
}

/**
 * The defines of matmul.v4.wgsl for a layout: both slices are stored k-major as f32 (rows of `tile` + 4,
 * so that a slice read along k by consecutive threads spreads over the banks), whole vec4s where the
 * operand is contiguous along m or n, one element at a time where it is contiguous along k.
 */
export function v4Defines(tile: number, layout: StagingLayout): Record<string, string> {
  const V = layout.vec;
  const ld = tile + 4;
  const [a, b] = slices(layout, tile, tile, V4_BK);
  const stageStore = (name: string, kInner: boolean) => (r: string): string[] => {
    const lane = (c: number) => (V === 1 ? r : `${r}.${LANES[c]}`);
    if (!kInner && V === 4) return [`      t${name}[(o * ${ld}u + i) / 4u] = vec4<f32>(${r});`];
    const lines: string[] = [];
    for (let c = 0; c < V; c++) {
      const s = kInner ? `(i + ${c}u) * ${ld}u + o` : `o * ${ld}u + i`;
      lines.push(`      { let s = ${s}; t${name}[s / 4u][s % 4u] = f32(${lane(c)}); }`);
    }
    return lines;
  };
  return {
    V: String(V),
    AV: V === 4 ? 'vec4<T>' : 'T',
    LD: String(ld),
    ...stagingDefines({ ...a, store: stageStore('a', layout.a === 'k') }, { ...b, store: stageStore('b', layout.b === 'k') }, V4_THREADS, V),
  };
}

/** Workgroup threads of an sgmat shape at subgroup size `sg`. */
export function sgmatThreads(s: SgmatShape, sg: number): number {
  return (s.tm / s.wm) * (s.tn / s.wn) * sg;
}

/** Workgroup bytes of an sgmat shape: the two staged f16 slices (padded rows) and per-subgroup f32 scratch. */
export function sgmatStorage(s: SgmatShape): number {
  const pad = 8;
  const slice = (rows: number) => Math.max(rows * (s.bk + pad), s.bk * (rows + pad));
  return (slice(s.tm) + slice(s.tn)) * 2 + (s.tm / s.wm) * (s.tn / s.wn) * s.sm * s.sn * 4;
}

/**
 * The defines of matmul_sgmat.wgsl: constants, the staged slices' strides and sizes, and the unrolled
 * LOAD (global to registers), STAGE (registers to workgroup), DECL, STEP and STORE code. Each slice is
 * staged in the layout it has in memory, rows padded by 8 elements.
 */
export function sgmatDefines(s: SgmatShape, sg: number, layout: StagingLayout): Record<string, string> {
  const pad = 8;
  const threads = sgmatThreads(s, sg);
  const V = layout.vec;
  const [a, b] = slices(layout, s.tm, s.tn, s.bk);
  const lda = a.inner + pad;
  const ldb = b.inner + pad;
  const stageStore = (name: string, ld: number) => (r: string): string[] =>
    V === 4
      ? [`      let s = o * ${ld}u + i;`, `      t${name}[s] = ${r}.x; t${name}[s + 1u] = ${r}.y; t${name}[s + 2u] = ${r}.z; t${name}[s + 3u] = ${r}.w;`]
      : [`      t${name}[o * ${ld}u + i] = ${r};`];
  const staged = stagingDefines({ ...a, store: stageStore('a', lda) }, { ...b, store: stageStore('b', ldb) }, threads, V);

  const compute = sgmatCompute(s, {
    left: (i) => (layout.a === 'k' ? ['ta', `(qm + ${i * s.sm}u) * LDA + kk`, 'false', 'LDA'] : ['ta', `kk * LDA + qm + ${i * s.sm}u`, 'true', 'LDA']),
    right: (j) => (layout.b === 'n' ? ['tb', `kk * LDB + qn + ${j * s.sn}u`, 'false', 'LDB'] : ['tb', `(qn + ${j * s.sn}u) * LDB + kk`, 'true', 'LDB']),
  });
  return {
    ...shapeDefines(s, sg),
    V: String(V),
    AV: V === 4 ? 'vec4<T>' : 'T',
    LDA: String(lda),
    LDB: String(ldb),
    SIZE_A: String(a.outer * lda),
    SIZE_B: String(b.outer * ldb),
    ...staged,
    ...compute,
  };
}

/** The constants of an sgmat kernel's shape, as defines. */
function shapeDefines(s: SgmatShape, sg: number): Record<string, string> {
  return { SG: String(sg), SM: String(s.sm), SN: String(s.sn), SK: String(s.sk), TM: String(s.tm), TN: String(s.tn), WM: String(s.wm), WN: String(s.wn), BK: String(s.bk) };
}

/** Where one subgroup matrix of a k step is loaded from: [buffer, element offset, column-major, stride] (WGSL). */
type MatrixSource = [from: string, offset: string, colMajor: string, stride: string];

/**
 * The DECL, STEP and STORE code of an sgmat kernel: the subgroup's (WM / SM) x (WN / SN) f32 result
 * matrices, one k step of SK at `kk` (its left matrices `left(i)`, right matrices `right(j)` and their
 * products), and the copy of each result through the subgroup's scratch to c.
 */
function sgmatCompute(s: SgmatShape, src: { left: (i: number) => MatrixSource; right: (j: number) => MatrixSource }): Record<'DECL' | 'STEP' | 'STORE', string> {
  const [rm, rn] = [s.wm / s.sm, s.wn / s.sn];
  const decl: string[] = [];
  const step: string[] = [];
  const store: string[] = [];
  const left = `subgroup_matrix_left<T, ${s.sk}, ${s.sm}>`;
  const right = `subgroup_matrix_right<T, ${s.sn}, ${s.sk}>`;
  for (let i = 0; i < rm; i++) {
    const [from, at, col, ld] = src.left(i);
    step.push(`      let l${i} = subgroupMatrixLoad<${left}>(&${from}, ${at}, ${col}, ${ld});`);
  }
  for (let j = 0; j < rn; j++) {
    const [from, at, col, ld] = src.right(j);
    step.push(`      let r${j} = subgroupMatrixLoad<${right}>(&${from}, ${at}, ${col}, ${ld});`);
  }
  for (let i = 0; i < rm; i++) {
    for (let j = 0; j < rn; j++) {
      decl.push(`  var acc${i}_${j} = subgroup_matrix_result<f32, ${s.sn}, ${s.sm}>();`);
      step.push(`      acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`);
      store.push(`  subgroupMatrixStore(&scratch, own, acc${i}_${j}, false, SN);`);
      store.push(`  workgroupBarrier();`);
      store.push(`  store_tile(own, lane, c_base, m0 + qm + ${i * s.sm}u, n0 + qn + ${j * s.sn}u);`);
      store.push(`  workgroupBarrier();`);
    }
  }
  return { DECL: decl.join('\n'), STEP: step.join('\n'), STORE: store.join('\n') };
}

/** Elements every offset and stride of a product read by matmul_sgmat_direct must be a multiple of (16 bytes of f16). */
export const SGMAT_DIRECT_ALIGN = 8;

/**
 * The defines of matmul_sgmat_direct.wgsl: each k step of BK loads its matrices from a and b in storage,
 * SK at a time (unrolled), row- or column-major as the operand's contiguous dimension says.
 */
export function sgmatDirectDefines(s: SgmatShape, sg: number, layout: Pick<StagingLayout, 'a' | 'b'>): Record<string, string> {
  const steps: string[] = [];
  const decl: string[] = [];
  let store = '';
  for (let u = 0; u < s.bk / s.sk; u++) {
    const k = `k0 + ${u * s.sk}u`;
    const c = sgmatCompute(s, {
      left: (i) => (layout.a === 'k' ? ['a', `a_base + (m0 + qm + ${i * s.sm}u) * p.a_sm + ${k}`, 'false', 'p.a_sm'] : ['a', `a_base + (${k}) * p.a_sk + m0 + qm + ${i * s.sm}u`, 'true', 'p.a_sk']),
      right: (j) => (layout.b === 'n' ? ['b', `b_base + (${k}) * p.b_sk + n0 + qn + ${j * s.sn}u`, 'false', 'p.b_sk'] : ['b', `b_base + (n0 + qn + ${j * s.sn}u) * p.b_sn + ${k}`, 'true', 'p.b_sn']),
    });
    steps.push('    {', c.STEP, '    }');
    if (u === 0) {
      decl.push(c.DECL);
      store = c.STORE;
    }
  }
  return {
    ...shapeDefines(s, sg),
    DECL: decl.join('\n'),
    STEP: steps.join('\n'),
    STORE: store,
  };
}
