// Dequantizing matrix-vector product for decoding (a few rows of x) with an NF4 weight (QLoRA): y[m, n] =
// sum_k x[m, k] NF4[code(n, k)] absmax(block of n K + k), f32 sums. W [N, K] is bitsandbytes' row-major
// byte stream (two codes per byte, the even element in the high nibble), read as 16-byte chunks of 32
// codes; a block of 64 is two chunks, so each chunk has one absmax, decoded here from its double
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
//! bindings
//!   x: array<vec4<T>> read
//!   codes: array<vec4<u32>> read
//!   qabs: array<u32> read
//!   scales: array<f32> read
//!   dyn: array<f32> read
//!   y: array<T> read_write

const E: u32 = 32u;

{{include nf4_values}}

{{include nf4_double_quant}}

{{include matvec_dequant}}

// WG_TABLE: the code values in workgroup memory, as bitsandbytes' decoding kernel keeps its map (GPUs: a
// constant array indexed per lane becomes private memory on some compilers); else the constant array
// (CPU adapters, whose compilers take several times as long over workgroup lookups).
const WG_TABLE: bool = {{WG_TABLE}};
var<workgroup> nf4_table: array<f32, 16>;

fn setup(li: u32) {
  if (WG_TABLE) {
    for (var i = li; i < 16u; i += SG * G) { nf4_table[i] = NF4_VALUES[i]; }
  }
}

fn nf4(code: u32) -> f32 {
  if (WG_TABLE) { return nf4_table[code]; }
  return NF4_VALUES[code];
}

/** Row n's dot products with the rows of x over its elements in chunk ch, whose codes are w (4 words of 8), dequantized with the chunk's absmax. */
fn chunk_dots(n: u32, ch: u32, w: vec4<u32>) -> array<f32, MR> {
  let r0 = n * p.K;
  let s = nf4_block_absmax(ch / 2u);
  var d: array<f32, MR>;
  for (var h = 0u; h < 8u; h++) {
    let e = ch * E + h * 4u;
    if (e >= r0 && e < r0 + p.K) {
      // Elements e .. e + 3: two bytes, the high nibble first in each.
      let bits = (w[h / 2u] >> ((h & 1u) * 16u)) & 0xffffu;
      let v = vec4<f32>(nf4((bits >> 4u) & 15u), nf4(bits & 15u), nf4((bits >> 12u) & 15u), nf4((bits >> 8u) & 15u)) * s;
      let k4 = (e - r0) / 4u;
      for (var m = 0u; m < MR; m++) { d[m] += dot(vec4<f32>(x[m * p.x_row + k4]), v); }
    }
  }
  return d;
}

fn row_scale(n: u32) -> f32 {
  return 1.0;
}
