// The entry point of the dequantizing matmuls (matmul_int8, matmul_nf4), tiled as matmul.v3: one subgroup
// per workgroup, each lane owns a vec4 of c columns over TM rows, rows of a shared through subgroupBroadcast
// (the SHARE step, unrolled on the host). a contiguous [M, K], c contiguous [M, N]; edge rows and columns are
// clamped on load and skipped on store. The kernel defines wt_rows(k4, nl): rows 4 k4 .. 4 k4 + 3 of Wt at
// the lane's vec4 of columns nl, dequantized, as the columns of a matrix; and out_scale(n4): the factor
// of output columns 4 n4 .. 4 n4 + 3. The forward product adds its bias to the scaled f32 sums before the one
// rounding (include/matmul_bias.wgsl; never the gradient, whose BIAS is false). Grid (ceil(N / (4 SG)), ceil(M / TM)).
const SG: u32 = {{SG}}u;
const TM: u32 = {{TM}}u;
const WT: bool = {{WT}};

{{include matmul_bias}}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let N4 = p.N / 4u;
  let K4 = p.K / 4u;
  let n4 = wid.x * SG + lane;
  let nl = min(n4, N4 - 1u);
  let m0 = wid.y * TM;
  var a_rows: array<u32, TM / SG>;
  for (var i = 0u; i < TM / SG; i++) {
    a_rows[i] = min(m0 + i * SG + lane, p.M - 1u) * K4;
  }
  var acc: array<vec4<f32>, TM>;
  for (var k4 = 0u; k4 < K4; k4++) {
    let w = wt_rows(k4, nl);
    let b0 = w[0];
    let b1 = w[1];
    let b2 = w[2];
    let b3 = w[3];
{{SHARE}}
  }
  if (n4 < N4) {
    let s = out_scale(n4);
    for (var r = 0u; r < TM; r++) {
      let row = m0 + r;
      if (row < p.M) {
        c[row * N4 + n4] = vec4<T>(biased4(acc[r] * s, 4u * n4));
      }
    }
  }
}
