// Batched matmul through subgroup matrices (tensor cores): c[b, m, n] = sum_k a[b, m, k] * b[b, k, n] for
// f16 a and b with f32 results (T = f16 only). A workgroup of 4 subgroups (SG lanes each, the adapter's
// fixed subgroup size) owns a 64 x 64 block of c; subgroup s owns the 32 x 32 quadrant (s / 2, s % 2) as
// (32 / SM) x (32 / SN) result matrices of SM x SN. Per step, a 64 x 32 slice of a and a 32 x 64 slice of
// b are staged in workgroup memory (any strides read in place, out-of-range elements as zero; the threads
// walk each operand's contiguous dimension, as a_walk_k and b_walk_n say), then each subgroup loads SM x SK
// left and SK x SN right matrices from them, so one staged tile feeds every multiply-accumulate of the
// block. The results go through workgroup memory to c (edges skipped), converted to T. The DECL, STEP and STORE placeholders are the
// per-matrix statements unrolled on the host (kernelgen/matmul.ts).
// Needs chromium-experimental-subgroup-matrix and shader-f16; the SM x SN x SK shape must be one of the
// adapter's subgroupMatrixConfigs with f16 components and f32 results.
// Bindings: 0 Params (uniform, element strides); 1 a: array<T> read; 2 b: array<T> read;
// 3 c: array<T> read_write (contiguous). Workgroup 4 SG threads; grid (ceil(N / 64), ceil(M / 64), batch).
enable chromium_experimental_subgroup_matrix;
alias T = f32;

//! params from matmul_strided
//! bindings
//!   a: array<T> read
//!   b: array<T> read
//!   c: array<T> read_write

const SG: u32 = {{SG}}u;
const SM: u32 = {{SM}}u;
const SN: u32 = {{SN}}u;
const SK: u32 = {{SK}}u;
const TILE: u32 = 64u;
const BK: u32 = 32u;
const WG: u32 = 4u * SG;
const LOADS: u32 = TILE * BK / WG;

// a slice row-major [m][k] (stride BK), b slice row-major [k][n] (stride TILE), results [m][n] (stride TILE).
var<workgroup> ta: array<T, TILE * BK>;
var<workgroup> tb: array<T, BK * TILE>;
var<workgroup> tc: array<f32, TILE * TILE>;

{{include batch_bases}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  let sgi = li / SG;
  let qm = (sgi / 2u) * 32u;
  let qn = (sgi % 2u) * 32u;
  let bases = batch_bases(wid.z, vec2<u32>(p.a_offset, p.b_offset), p.a_batch_strides, p.b_batch_strides);
  var a_base = bases.x;
  var b_base = bases.y;
{{DECL}}
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var t = 0u; t < LOADS; t++) {
      let e = li + t * WG;
      let ak = select(e / TILE, e % BK, p.a_walk_k != 0u);
      let am = select(e % TILE, e / BK, p.a_walk_k != 0u);
      var va = T(0.0);
      if (m0 + am < p.M && k0 + ak < p.K) { va = a[a_base + (m0 + am) * p.a_sm + (k0 + ak) * p.a_sk]; }
      ta[am * BK + ak] = va;
      let bn = select(e / BK, e % TILE, p.b_walk_n != 0u);
      let bk = select(e % BK, e / TILE, p.b_walk_n != 0u);
      var vb = T(0.0);
      if (n0 + bn < p.N && k0 + bk < p.K) { vb = b[b_base + (k0 + bk) * p.b_sk + (n0 + bn) * p.b_sn]; }
      tb[bk * TILE + bn] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk += SK) {
{{STEP}}
    }
    workgroupBarrier();
  }
{{STORE}}
  workgroupBarrier();
  let c_base = wid.z * p.M * p.N;
  for (var e = li; e < TILE * TILE; e += WG) {
    let row = m0 + e / TILE;
    let col = n0 + e % TILE;
    if (row < p.M && col < p.N) { c[c_base + row * p.N + col] = T(tc[e]); }
  }
}
