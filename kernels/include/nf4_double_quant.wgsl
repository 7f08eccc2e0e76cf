/// Shared by nf4_absmax and matvec_nf4, so that both decode an NF4 block's absmax bit for bit alike: the
/// double quantization undone (reads the bindings qabs, scales and dyn, and p.offset).
// absmax of block b = dyn[qabs byte b] * scales[b / 256] + offset (bitsandbytes' dequantize_blockwise of
// the absmaxes plus their mean); qabs holds 4 byte codes per u32 word (byte j of word i is block 4i + j).
fn nf4_block_absmax(b: u32) -> f32 {
  let q = (qabs[b / 4u] >> ((b & 3u) * 8u)) & 255u;
  return dyn[q] * scales[b / 256u] + p.offset;
}
