// Dequantizing matrix-vector product for decoding (a few rows of x) with an NF4 weight (QLoRA): y[m, n] =
// sum_k x[m, k] NF4[code(n, k)] absmax(block of n K + k), f32 sums. W [N, K] is bitsandbytes' row-major
// byte stream (two codes per byte, the even element in the high nibble), read as 16-byte chunks of 32
// codes (include/dequant_nf4.wgsl); a block of 64 is two chunks, so each chunk has one absmax, decoded here from its double
// quantization (include/nf4_double_quant.wgsl, as nf4_absmax does): one dispatch and no temporary. Blocks
// run over the flattening and may straddle rows. x [MR, K]
// contiguous, read as vec4s. Entry point and layout: include/matvec_dequant.wgsl's (E = 32); K a
// multiple of 4 (every group of 4 elements is half a word). Grid: groups of G ROWS rows; SG G threads.
enable subgroups;
alias T = f32;

//! params
//!   N: u32
//!   K: u32
//!   chunks: u32         // the most 16-byte chunks one row covers
//!   x_row: u32          // vec4s per row of x (K / 4)
//!   offset: f32         // the absmaxes' mean (nf4_absmax's offset)
//!   bias_offset: u32
//! bindings
//!   x: array<vec4<T>> read
//!   codes: array<vec4<u32>> read
//!   qabs: array<u32> read
//!   scales: array<f32> read
//!   dyn: array<f32> read
//!   y: array<T> read_write
//!   bias: array<T> read

{{include nf4_values}}

{{include nf4_double_quant}}

{{include dequant_nf4}}

{{include matvec_dequant}}

fn setup(li: u32) {
  nf4_setup(li);
}

fn x_vec(m: u32, k4: u32) -> vec4<f32> {
  return vec4<f32>(x[m * p.x_row + k4]);
}

/** Row n's dot products with the rows of x over its elements in chunk ch, whose codes are w, with the chunk's absmax. */
fn chunk_dots(n: u32, ch: u32, w: vec4<u32>) -> array<f32, MR> {
  let b = ch / 2u;
  return nf4_dots(n * p.K, p.K, ch, w, nf4_absmax_of(b, qabs[b / 4u], scales[b / 256u], p.offset));
}

fn row_scale(n: u32) -> f32 {
  return 1.0;
}
