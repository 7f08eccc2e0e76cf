/// The int8 weight format as the matrix-vector kernels read it (matvec_int8, matvec_fused_int8): 16-byte
/// chunks of 16 codes (byte j of word i is element 4i + j, two's complement, unpack4x8snorm gives code / 127),
/// the row's absmax applied to its sum by the kernel. The kernel defines MR and x_vec(m, k4), the vec4 k4 of
/// row m of x (as the product reads it: normalized where a norm is fused).
const E: u32 = 16u;

/** The dot products with the rows of x of the row whose elements are r0 .. r0 + k - 1, over its elements in chunk ch, whose codes are w (4 words of 4). */
fn int8_dots(r0: u32, k: u32, ch: u32, w: vec4<u32>) -> array<f32, MR> {
  var d: array<f32, MR>;
  for (var q = 0u; q < 4u; q++) {
    let e = ch * E + q * 4u;
    if (e >= r0 && e < r0 + k) {
      let v = unpack4x8snorm(w[q]);
      let k4 = (e - r0) / 4u;
      for (var m = 0u; m < MR; m++) { d[m] += dot(x_vec(m, k4), v); }
    }
  }
  return d;
}
