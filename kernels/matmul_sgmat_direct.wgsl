// Batched matmul through subgroup matrices, each subgroup loading its matrices straight from a and b in
// storage (no workgroup staging, no barriers in the k loop): c[b, m, n] = sum_k a[b, m, k] * b[b, k, n]
// for f16 a and b with f32 results. For tile-aligned products only (M a multiple of TM, N of TN, K of BK,
// every offset and stride a multiple of 8 elements, a and b each contiguous along one of their
// dimensions); the plan runs every other product with the staged kernel of the same tiles
// (matmul_sgmat.wgsl). A workgroup of (TM / WM) x (TN / WN) subgroups owns a TM x TN block of c, each
// subgroup a WM x WN part of it as (WM / SM) x (WN / SN) result matrices of SM x SN; subgroups of one
// workgroup read neighbouring rows and columns, so a and b are shared through the caches. The k loop
// steps BK, unrolled SK at a time. Each result matrix goes through the subgroup's own workgroup scratch
// to c, converted to TC. The STEP, DECL and STORE placeholders are generated on the host
// (kernelgen/matmul.ts). Needs chromium-experimental-subgroup-matrix and shader-f16.
// Bindings: 0 Params (uniform, element strides); 1 a: array<T> read; 2 b: array<T> read; 3 c: array<TC>
// read_write (contiguous); 4 bias: array<T> read (include/matmul_bias.wgsl); 5 addend: array<T> read (include/matmul_addend.wgsl). Grid (N / TN, M / TM, batch).
{{include sgmat_header}}

//! params from matmul_strided
//! bindings
//!   a: array<T> read
//!   b: array<T> read
//!   c: array<TC> read_write
//!   bias: array<T> read
//!   addend: array<T> read

{{include sgmat_shape}}
const GN: u32 = TN / WN;
const WG: u32 = (TM / WM) * GN * SG;

var<workgroup> scratch: array<f32, (WG / SG) * SM * SN>;

{{include batch_bases}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  {{include sgmat_tile}}
{{DECL}}
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
{{STEP}}
  }
  let c_base = wid.z * p.M * p.N;
  let own = sgi * SM * SN;
{{STORE}}
}

// Copies SM x SN results from the subgroup's scratch to c at (row0, col0), adding the bias, converting to TC.
fn store_tile(own: u32, lane: u32, c_base: u32, row0: u32, col0: u32) {
  for (var e = lane; e < SM * SN; e += SG) {
    let col = col0 + e % SN;
    let i = c_base + (row0 + e / SN) * p.N + col;
    c[i] = TC(epilogue(scratch[own + e], col, i));
  }
}
