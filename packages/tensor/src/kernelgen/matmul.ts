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
 * How the sgmat kernel stages its operands: `a` along k (`k`, a is [m][k] in memory) or m (`m`); `b` along
 * n (`n`, b is [k][n]) or k (`k`); `vec` 4 when every staged run is aligned to 4 elements (vec4 loads).
 */
export interface SgmatLayout {
  a: 'k' | 'm';
  b: 'n' | 'k';
  vec: 1 | 4;
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
 * LOAD (global to registers), STAGE (registers to workgroup), DECL, STEP and STORE code.
 */
export function sgmatDefines(s: SgmatShape, sg: number, layout: SgmatLayout): Record<string, string> {
  const pad = 8;
  const threads = sgmatThreads(s, sg);
  const V = layout.vec;
  // Each operand's staged slice: `outer` rows of `inner` contiguous elements.
  const a = layout.a === 'k' ? { outer: s.tm, inner: s.bk } : { outer: s.bk, inner: s.tm };
  const b = layout.b === 'n' ? { outer: s.bk, inner: s.tn } : { outer: s.tn, inner: s.bk };
  const lda = a.inner + pad;
  const ldb = b.inner + pad;
  const load: string[] = [];
  const stage: string[] = [];
  const operand = (name: 'a' | 'b', dims: { outer: number; inner: number }, ld: number, index: { outer: string; inner: string; outerLim: string; innerLim: string; outerStride: string; innerStride: string }) => {
    const reg = `r${name}`;
    const perRow = dims.inner / V;
    const count = (dims.outer * dims.inner) / V / threads;
    const at = (body: string[]) => [`    for (var t = 0u; t < ${count}u; t++) {`, `      let e = li + t * ${threads}u;`, `      let o = e / ${perRow}u;`, `      let i = (e % ${perRow}u) * ${V}u;`, ...body, `    }`];
    const elem = `${name}_base + (${index.outer} + o) * ${index.outerStride} + (${index.inner} + i) * ${index.innerStride}`;
    load.push(
      ...at([
        `      ${reg}[t] = AV(0.0);`,
        `      if (${index.outer} + o < ${index.outerLim} && ${index.inner} + i < ${index.innerLim}) { ${reg}[t] = ${name}[${V === 4 ? `(${elem}) / 4u` : elem}]; }`,
      ]),
    );
    const to = `o * ${ld}u + i`;
    stage.push(
      ...at(
        V === 4
          ? [`      let s = ${to};`, `      t${name}[s] = ${reg}[t].x; t${name}[s + 1u] = ${reg}[t].y; t${name}[s + 2u] = ${reg}[t].z; t${name}[s + 3u] = ${reg}[t].w;`]
          : [`      t${name}[${to}] = ${reg}[t];`],
      ),
    );
  };
  if (layout.a === 'k') operand('a', a, lda, { outer: 'm0', inner: 'k0', outerLim: 'p.M', innerLim: 'p.K', outerStride: 'p.a_sm', innerStride: 'p.a_sk' });
  else operand('a', a, lda, { outer: 'k0', inner: 'm0', outerLim: 'p.K', innerLim: 'p.M', outerStride: 'p.a_sk', innerStride: 'p.a_sm' });
  if (layout.b === 'n') operand('b', b, ldb, { outer: 'k0', inner: 'n0', outerLim: 'p.K', innerLim: 'p.N', outerStride: 'p.b_sk', innerStride: 'p.b_sn' });
  else operand('b', b, ldb, { outer: 'n0', inner: 'k0', outerLim: 'p.N', innerLim: 'p.K', outerStride: 'p.b_sn', innerStride: 'p.b_sk' });

  const [rm, rn] = [s.wm / s.sm, s.wn / s.sn];
  const decl: string[] = [];
  const step: string[] = [];
  const store: string[] = [];
  const left = `subgroup_matrix_left<T, ${s.sk}, ${s.sm}>`;
  const right = `subgroup_matrix_right<T, ${s.sn}, ${s.sk}>`;
  for (let i = 0; i < rm; i++) {
    const at = layout.a === 'k' ? `(qm + ${i * s.sm}u) * LDA + kk, false` : `kk * LDA + qm + ${i * s.sm}u, true`;
    step.push(`      let l${i} = subgroupMatrixLoad<${left}>(&ta, ${at}, LDA);`);
  }
  for (let j = 0; j < rn; j++) {
    const at = layout.b === 'n' ? `kk * LDB + qn + ${j * s.sn}u, false` : `(qn + ${j * s.sn}u) * LDB + kk, true`;
    step.push(`      let r${j} = subgroupMatrixLoad<${right}>(&tb, ${at}, LDB);`);
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
  return {
    SG: String(sg),
    SM: String(s.sm),
    SN: String(s.sn),
    SK: String(s.sk),
    TM: String(s.tm),
    TN: String(s.tn),
    WM: String(s.wm),
    WN: String(s.wn),
    BK: String(s.bk),
    V: String(V),
    AV: V === 4 ? 'vec4<T>' : 'T',
    LDA: String(lda),
    LDB: String(ldb),
    SIZE_A: String(a.outer * lda),
    SIZE_B: String(b.outer * ldb),
    LOAD: load.join('\n'),
    STAGE: stage.join('\n'),
    DECL: decl.join('\n'),
    STEP: step.join('\n'),
    STORE: store.join('\n'),
  };
}
