/// Shared by nf4_absmax and the NF4 matrix-vector kernels, so that all decode an NF4 block's absmax bit for
/// bit alike: the double quantization undone (reads the binding dyn).
// absmax of block b = dyn[qabs byte b] * scales[b / 256] + offset (bitsandbytes' dequantize_blockwise of
// the absmaxes plus their mean); qabs holds 4 byte codes per u32 word (byte j of word i is block 4i + j):
// `word` is qabs[b / 4], `scale` scales[b / 256].
fn nf4_absmax_of(b: u32, word: u32, scale: f32, offset: f32) -> f32 {
  let q = (word >> ((b & 3u) * 8u)) & 255u;
  return dyn[q] * scale + offset;
}
