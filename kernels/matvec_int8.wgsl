// Dequantizing matrix-vector product for decoding (a few rows of x) with an int8 weight: y[m, n] =
// absmax[n] / 127 * sum_k x[m, k] code[n, k], f32 sums. W [N, K] is row-major int8 codes, 4 per u32 (byte
// j of word i is element 4i + j, two's complement), read as 16-byte chunks of 16 codes; unpack4x8snorm
// gives code / 127, the row's absmax is applied to its sum. x [MR, K] contiguous, read as vec4s. The
// entry point and layout are include/matvec_dequant.wgsl's (E = 16); K a multiple of 4.
// Grid: groups of G ROWS rows; workgroup SG G threads.
enable subgroups;
alias T = f32;

//! params
//!   N: u32
//!   K: u32
//!   chunks: u32         // the most 16-byte chunks one row covers
//!   x_row: u32          // vec4s per row of x (K / 4)
//! bindings
//!   x: array<vec4<T>> read
//!   codes: array<vec4<u32>> read
//!   absmax: array<f32> read
//!   y: array<T> read_write

const E: u32 = 16u;

{{include matvec_dequant}}

fn setup(li: u32) {}

/** Row n's dot products with the rows of x over its elements in chunk ch, whose codes are w (4 words of 4). */
fn chunk_dots(n: u32, ch: u32, w: vec4<u32>) -> array<f32, MR> {
  let r0 = n * p.K;
  var d: array<f32, MR>;
  for (var q = 0u; q < 4u; q++) {
    let e = ch * E + q * 4u;
    if (e >= r0 && e < r0 + p.K) {
      let v = unpack4x8snorm(w[q]);
      let k4 = (e - r0) / 4u;
      for (var m = 0u; m < MR; m++) { d[m] += dot(vec4<f32>(x[m * p.x_row + k4]), v); }
    }
  }
  return d;
}

fn row_scale(n: u32) -> f32 {
  return absmax[n];
}
