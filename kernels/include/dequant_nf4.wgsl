/// The NF4 weight format as the matrix-vector kernels read it (matvec_nf4, matvec_fused_nf4): bitsandbytes'
/// row-major byte stream (two codes per byte, the even element in the high nibble) in 16-byte chunks of 32
/// codes, a block of 64 two chunks (so each chunk has one absmax, include/nf4_double_quant.wgsl). The kernel
/// defines MR, SG, G and x_vec(m, k4), the vec4 k4 of row m of x (normalized where a norm is fused).
const E: u32 = 32u;

// WG_TABLE: the code values in workgroup memory, as bitsandbytes' decoding kernel keeps its map (GPUs: a
// constant array indexed per lane becomes private memory on some compilers); else the constant array
// (CPU adapters, whose compilers take several times as long over workgroup lookups).
const WG_TABLE: bool = {{WG_TABLE}};
var<workgroup> nf4_table: array<f32, 16>;

/** Fills the table (every thread, before a workgroup barrier). */
fn nf4_setup(li: u32) {
  if (WG_TABLE) {
    for (var i = li; i < 16u; i += SG * G) { nf4_table[i] = NF4_VALUES[i]; }
  }
}

fn nf4(code: u32) -> f32 {
  if (WG_TABLE) { return nf4_table[code]; }
  return NF4_VALUES[code];
}

/** The dot products with the rows of x of the row whose elements are r0 .. r0 + k - 1, over its elements in chunk ch, whose codes are w (4 words of 8), dequantized with the chunk's absmax s. */
fn nf4_dots(r0: u32, k: u32, ch: u32, w: vec4<u32>, s: f32) -> array<f32, MR> {
  var d: array<f32, MR>;
  for (var h = 0u; h < 8u; h++) {
    let e = ch * E + h * 4u;
    if (e >= r0 && e < r0 + k) {
      // Elements e .. e + 3: two bytes, the high nibble first in each.
      let bits = (w[h / 2u] >> ((h & 1u) * 16u)) & 0xffffu;
      let v = vec4<f32>(nf4((bits >> 4u) & 15u), nf4(bits & 15u), nf4((bits >> 12u) & 15u), nf4((bits >> 8u) & 15u)) * s;
      let k4 = (e - r0) / 4u;
      for (var m = 0u; m < MR; m++) { d[m] += dot(x_vec(m, k4), v); }
    }
  }
  return d;
}
