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

/** Result matrices per subgroup of the sgmat kernel: its 32 x 32 quadrant in SM x SN matrices. */
function sgmatGrid(sm: number, sn: number): [number, number] {
  return [32 / sm, 32 / sn];
}

/**
 * The DECL, STEP and STORE placeholders of matmul_sgmat.wgsl for SM x SN x SK matrices: one zeroed
 * f32 result matrix per (i, j) of the subgroup's quadrant; per k step, the left matrices of its rows
 * and the right matrices of its columns loaded from workgroup memory and multiplied into each result;
 * the results stored row-major into workgroup memory. Unrolled, since each matrix is its own variable.
 */
export function sgmatParts(sm: number, sn: number, sk: number): { DECL: string; STEP: string; STORE: string } {
  const [rm, rn] = sgmatGrid(sm, sn);
  const decl: string[] = [];
  const step: string[] = [];
  const store: string[] = [];
  const left = `subgroup_matrix_left<T, ${sk}, ${sm}>`;
  const right = `subgroup_matrix_right<T, ${sn}, ${sk}>`;
  for (let i = 0; i < rm; i++) {
    step.push(`      let l${i} = subgroupMatrixLoad<${left}>(&ta, (qm + ${i * sm}u) * BK + kk, false, BK);`);
  }
  for (let j = 0; j < rn; j++) {
    step.push(`      let r${j} = subgroupMatrixLoad<${right}>(&tb, kk * TILE + qn + ${j * sn}u, false, TILE);`);
  }
  for (let i = 0; i < rm; i++) {
    for (let j = 0; j < rn; j++) {
      decl.push(`  var acc${i}_${j} = subgroup_matrix_result<f32, ${sn}, ${sm}>();`);
      step.push(`      acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`);
      store.push(`  subgroupMatrixStore(&tc, (qm + ${i * sm}u) * TILE + qn + ${j * sn}u, acc${i}_${j}, false, TILE);`);
    }
  }
  return { DECL: decl.join('\n'), STEP: step.join('\n'), STORE: store.join('\n') };
}
