// Plain-WGSL stand-ins for the subgroup-matrix builtins, so that the sgmat kernels' staging, tiling and
// layouts can be checked on adapters without subgroup matrices: every lane holds each whole matrix (loaded
// from workgroup memory or from storage) and computes each whole product (f16 inputs widened to f32, whose products are exact, f32 accumulation).
// The hardware's own builtins are checked only where an adapter offers them.

/** Rewrites an sgmat module so that it needs no subgroup-matrix feature. */
export function emulateSubgroupMatrices(wgsl: string): string {
  let src = wgsl.replace(/^enable chromium_experimental_subgroup_matrix;\n/m, '').replace(/^diagnostic\(off, chromium\.subgroup_matrix_uniformity\);\n/m, '');
  const dims = [...src.matchAll(/subgroup_matrix_\w+<\w+, (\d+), (\d+)>/g)].map((m) => Number(m[1]) * Number(m[2]));
  const size = Math.max(...dims);
  src = src.replace(/subgroupMatrixLoad<subgroup_matrix_(?:left|right)<T, (\d+), (\d+)>>\(&(t?[ab]), /g, (_, cols: string, rows: string, from: string) => `emu_load_${from}(${cols}u, ${rows}u, `);
  src = src.replace(/subgroup_matrix_result<f32, (\d+), (\d+)>\(\)/g, `array<f32, ${size}>()`);
  src = src.replace(/subgroupMatrixMultiplyAccumulate\(/g, 'emu_mma(');
  src = src.replace(/subgroupMatrixStore\(&scratch, /g, 'emu_store(');
  if (/subgroup_?[mM]atrix/.test(src.replace(/\/\/.*$/gm, ''))) throw new Error('emulateSubgroupMatrices: a subgroup-matrix construct is left unreplaced');
  const load = (from: string) => `
fn emu_load_${from}(cols: u32, rows: u32, off: u32, col_major: bool, ld: u32) -> array<f32, ${size}> {
  var m: array<f32, ${size}>;
  for (var r = 0u; r < emu_n(rows); r++) {
    for (var c = 0u; c < emu_n(cols); c++) {
      m[r * cols + c] = f32(${from}[select(off + r * ld + c, off + c * ld + r, col_major)]);
    }
  }
  return m;
}`;
  // Loop bounds read from the uniform, so that the compiler does not unroll 16 x 16 x 16 loops.
  // Staged kernels load from workgroup memory (ta, tb), the direct one from the operands in storage (a, b).
  const sources = ['ta', 'tb', 'a', 'b'].filter((f) => src.includes(`emu_load_${f}(`));
  return `${src}
fn emu_n(n: u32) -> u32 { return min(n, n + p.M); }
${sources.map(load).join('\n')}

fn emu_mma(l: array<f32, ${size}>, r: array<f32, ${size}>, acc: array<f32, ${size}>) -> array<f32, ${size}> {
  var out = acc;
  for (var m = 0u; m < emu_n(SM); m++) {
    for (var n = 0u; n < emu_n(SN); n++) {
      var s = out[m * SN + n];
      for (var k = 0u; k < emu_n(SK); k++) { s += l[m * SK + k] * r[k * SN + n]; }
      out[m * SN + n] = s;
    }
  }
  return out;
}

fn emu_store(off: u32, v: array<f32, ${size}>, col_major: bool, ld: u32) {
  for (var r = 0u; r < emu_n(SM); r++) {
    for (var c = 0u; c < emu_n(SN); c++) {
      scratch[select(off + r * ld + c, off + c * ld + r, col_major)] = v[r * SN + c];
    }
  }
}
`;
}
