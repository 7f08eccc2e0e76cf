// Dequantizing matrix-vector product for decoding (a few rows of x) with an int8 weight: y[m, n] =
// absmax[n] / 127 * sum_k x[m, k] code[n, k], f32 sums. W [N, K] is row-major int8 codes, 4 per u32 (byte
// j of word i is element 4i + j, two's complement), read as 16-byte chunks of 16 codes; unpack4x8snorm
// gives code / 127, the row's absmax is applied to its sum (include/dequant_int8.wgsl). x [MR, K] contiguous, read as vec4s. The
// entry point and layout are include/matvec_dequant.wgsl's (E = 16); K a multiple of 4.
// Grid: groups of G ROWS rows; workgroup SG G threads.
enable subgroups;
alias T = f32;

//! params
//!   N: u32
//!   K: u32
//!   chunks: u32         // the most 16-byte chunks one row covers
//!   x_row: u32          // vec4s per row of x (K / 4)
//!   bias_offset: u32
//! bindings
//!   x: array<vec4<T>> read
//!   codes: array<vec4<u32>> read
//!   absmax: array<f32> read
//!   y: array<T> read_write
//!   bias: array<T> read

{{include dequant_int8}}

{{include matvec_dequant}}

fn setup(li: u32) {}

fn x_vec(m: u32, k4: u32) -> vec4<f32> {
  return vec4<f32>(x[m * p.x_row + k4]);
}

/** Row n's dot products with the rows of x over its elements in chunk ch, whose codes are w. */
fn chunk_dots(n: u32, ch: u32, w: vec4<u32>) -> array<f32, MR> {
  return int8_dots(n * p.K, p.K, ch, w);
}

fn row_scale(n: u32) -> f32 {
  return absmax[n];
}
