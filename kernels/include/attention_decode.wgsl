// Shared by the decode kernels that write partial states (attention_decode_partial and its v2): partial
// t = r n_split + sp runs query row r = b Hq + h over keys j0 .. j_end - 1, split sp of split_len keys;
// q_base and kv_base: the first element of its query row and of its kv head (kv heads kv_stride elements
// apart: S D when k and v are contiguous, more when they are the filled prefix of a KV cache).
struct DecodeSplit {
  t: u32,
  b: u32,
  q_base: u32,
  kv_base: u32,
  j0: u32,
  j_end: u32,
}

// Keys before the sliding window (keys_from(0)) are left out of every split.
fn decode_split(r: u32, sp: u32) -> DecodeSplit {
  let j_end = min(p.S, (sp + 1u) * p.split_len);
  let j0 = max(sp * p.split_len, keys_from(0u));
  return DecodeSplit(r * p.n_split + sp, r / p.Hq, r * p.D, kv_head_of(r) * p.kv_stride, j0, j_end);
}
