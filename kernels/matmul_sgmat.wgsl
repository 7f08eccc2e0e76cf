// Batched matmul through subgroup matrices (tensor cores): c[b, m, n] = sum_k a[b, m, k] * b[b, k, n] for
// f16 a and b with f32 results (T = f16 only). A workgroup of (TM / WM) x (TN / WN) subgroups (SG lanes each,
// the adapter's fixed subgroup size) owns a TM x TN block of c; each subgroup owns a WM x WN part of it as
// (WM / SM) x (WN / SN) result matrices of SM x SN. Per step of BK, slices of a and b are staged in
// workgroup memory in the layout they have in memory (a as [m][k] when k is contiguous, else [k][m]; b as
// [k][n] when n is contiguous, else [n][k]: the LAYOUT_A/LAYOUT_B defines), read as vec4s where the plan
// found them aligned (V = 4) and as scalars otherwise, out-of-range elements as zero. The next slice is
// loaded into registers while the current one is multiplied. Subgroup matrices are loaded from the staged
// slices row- or column-major to match, so one staged slice feeds every multiply-accumulate of the block.
// Each result matrix goes through the subgroup's own workgroup scratch to c (edges skipped), converted to
// T. The STAGE_*, DECL, STEP and STORE placeholders are generated on the host (kernelgen/matmul.ts).
// Needs chromium-experimental-subgroup-matrix and shader-f16; SM x SN x SK must be one of the adapter's
// subgroupMatrixConfigs with f16 components and f32 results.
// Bindings: 0 Params (uniform, element strides); 1 a: array<AV> read; 2 b: array<AV> read (AV: T, or
// vec4<T> when V = 4); 3 c: array<TC> read_write (contiguous); 4 bias: array<T> read (include/matmul_bias.wgsl); 5 addend: array<T> read (include/matmul_addend.wgsl). Grid (ceil(N / TN), ceil(M / TM), batch).
{{include sgmat_header}}
alias AV = {{AV}};

//! params from matmul_strided
//! bindings
//!   a: array<AV> read
//!   b: array<AV> read
//!   c: array<TC> read_write
//!   bias: array<T> read
//!   addend: array<T> read

{{include sgmat_shape}}
const V: u32 = {{V}}u;
const GN: u32 = TN / WN;
const WG: u32 = (TM / WM) * GN * SG;
// Staged rows are padded by 8 elements (16 bytes) so that consecutive rows start in different banks.
const LDA: u32 = {{LDA}}u;
const LDB: u32 = {{LDB}}u;

var<workgroup> ta: array<T, {{SIZE_A}}>;
var<workgroup> tb: array<T, {{SIZE_B}}>;
var<workgroup> scratch: array<f32, (WG / SG) * SM * SN>;

{{include batch_bases}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  {{include sgmat_tile}}
  var ra: array<AV, {{A_LOADS}}>;
  var rb: array<AV, {{B_LOADS}}>;
{{DECL}}
  var k0 = 0u;
{{LOAD}}
  loop {
    if (k0 >= p.K) { break; }
{{STAGE}}
    workgroupBarrier();
    k0 += BK;
{{LOAD}}
    for (var kk = 0u; kk < BK; kk += SK) {
{{STEP}}
    }
    workgroupBarrier();
  }
  let c_base = wid.z * p.M * p.N;
  let own = sgi * SM * SN;
{{STORE}}
}

// Copies SM x SN results from the subgroup's scratch to c at (row0, col0), adding the bias and converting to
// TC; edges skipped.
fn store_tile(own: u32, lane: u32, c_base: u32, row0: u32, col0: u32) {
  for (var e = lane; e < SM * SN; e += SG) {
    let row = row0 + e / SN;
    let col = col0 + e % SN;
    if (row < p.M && col < p.N) { c[c_base + row * p.N + col] = TC(epilogue(scratch[own + e], col, c_base + row * p.N + col)); }
  }
}
