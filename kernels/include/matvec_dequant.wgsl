/// The entry point of the dequantizing matrix-vector kernels (matvec_int8, matvec_nf4), matvec.v3's loop
/// over packed codes: y[m, n] = row_scale(n) * sum over the chunks of row n of chunk_dots(n, chunk, w)[m].
// W [N, K] is one row-major stream of codes (binding `codes`) read in 16-byte chunks (E elements each); row
// n covers elements n K .. n K + K - 1, chunks n K / E .. (n K + K - 1) / E (whole chunks when K is a
// multiple of E; else its end chunks are shared with the neighbouring rows, and chunk_dots masks their
// elements). A workgroup holds G subgroups of SG lanes, each owning ROWS rows; per pass every lane loads U
// chunks of each row (lane + j SG: neighbouring lanes read neighbouring chunks), all of them before it
// decodes any, so that ROWS U loads are in flight. Sums in f32 for the MR rows of x at once (each chunk
// is decoded once for all of them), then subgroupAdd. Rows past N are clamped on load and skipped on
// store. The kernel defines E; chunk_dots(n, chunk, w) -> array<f32, MR>, row n's sums over its elements
// in the chunk whose codes are w; row_scale(n); and setup(li), which every thread runs before a
// workgroup barrier (to fill a table in workgroup memory). A bias is added to the scaled f32 sums before the one
// rounding (include/matmul_bias.wgsl). Grid: groups of G ROWS rows (2-D).
const SG: u32 = {{SG}}u;
const ROWS: u32 = {{ROWS}}u;
const U: u32 = {{U}}u;
const G: u32 = {{G}}u;
const MR: u32 = {{MR}}u;

{{include matmul_bias}}

@compute @workgroup_size(SG * G)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(local_invocation_index) li: u32) {
  setup(li);
  workgroupBarrier();
  // No early return past N: subgroupAdd needs uniform control flow, and n0 varies with the subgroup.
  let n0 = ((wid.x + wid.y * nwg.x) * G + li / SG) * ROWS;
  var first: array<u32, ROWS>;
  var count: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    let n = min(n0 + r, p.N - 1u);
    first[r] = n * p.K / E;
    count[r] = (n * p.K + p.K - 1u) / E - first[r] + 1u;
  }
  var sums: array<f32, ROWS * MR>;
  // p.chunks: the most chunks a row covers, so that the loop's bound is uniform.
  for (var c0 = 0u; c0 < p.chunks; c0 += SG * U) {
    // Every load of the pass first, unconditionally (clamped into the row), so that all ROWS U are in flight.
    var w: array<vec4<u32>, ROWS * U>;
    for (var j = 0u; j < U; j++) {
      for (var r = 0u; r < ROWS; r++) { w[j * ROWS + r] = codes[first[r] + min(c0 + lane + j * SG, count[r] - 1u)]; }
    }
    for (var j = 0u; j < U; j++) {
      let c = c0 + lane + j * SG;
      for (var r = 0u; r < ROWS; r++) {
        if (c < count[r]) {
          let d = chunk_dots(min(n0 + r, p.N - 1u), first[r] + c, w[j * ROWS + r]);
          for (var m = 0u; m < MR; m++) { sums[r * MR + m] += d[m]; }
        }
      }
    }
  }
  for (var r = 0u; r < ROWS; r++) {
    let n = n0 + r;
    let s = row_scale(min(n, p.N - 1u));
    for (var m = 0u; m < MR; m++) {
      let total = subgroupAdd(sums[r * MR + m]);
      if (lane == 0u && n < p.N) { y[m * p.N + n] = T(biased(total * s, n)); }
    }
  }
}
