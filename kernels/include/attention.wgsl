// Shared by the attention kernels: the uniform Params block (one packer fills it for every kernel of
// a call) and, for the kernels that read the key padding mask (binding `mask`), which keys a query
// row sees and which kv head a query head reads.
//! params
//!   B: u32
//!   Hq: u32
//!   Hkv: u32
//!   T: u32
//!   S: u32
//!   D: u32
//!   D4: u32
//!   BK: u32
//!   causal: u32
//!   has_mask: u32
//!   mask_bits: u32
//!   mask_offset: u32
//!   scale: f32
//!   kv_offset: i32
//!   n_split: u32
//!   split_len: u32
//!   kv_stride: u32
//!   window: u32

// Whether key j of batch b is a real key, not padding (mask words ANDed with mask_bits: f32 -0 is zero too).
fn key_kept(b: u32, j: u32) -> bool {
  return p.has_mask == 0u || (mask[p.mask_offset + b * p.S + j] & p.mask_bits) != 0u;
}

// Whether query row i of batch b sees key j: causal (bottom-right aligned, j <= i + S - T), inside the
// sliding window when there is one (window != 0: j > i + S - T - window) and not padding.
fn visible(b: u32, i: u32, j: u32) -> bool {
  if (p.causal != 0u && i32(j) > i32(i) + p.kv_offset) { return false; }
  if (p.window != 0u && i32(j) + i32(p.window) <= i32(i) + p.kv_offset) { return false; }
  return key_kept(b, j);
}

// The first key query row i0 (or any later row) may see: 0, or with a sliding window i0 + S - T - window + 1.
fn keys_from(i0: u32) -> u32 {
  if (p.window == 0u) { return 0u; }
  return u32(clamp(i32(i0) + p.kv_offset - i32(p.window) + 1, 0, i32(p.S)));
}

// The kv head b Hkv + hk that query head bh = b Hq + h reads: hk = h / (Hq / Hkv), as HF's repeat_kv.
fn kv_head_of(bh: u32) -> u32 {
  return (bh / p.Hq) * p.Hkv + (bh % p.Hq) / (p.Hq / p.Hkv);
}

// Keys the query rows i0 .. i0 + rows - 1 may see: all S, or when causal up to the last row's limit.
fn keys_seen(i0: u32, rows: u32) -> u32 {
  if (p.causal == 0u) { return p.S; }
  return u32(clamp(i32(min(i0 + rows, p.T)) + p.kv_offset, 0, i32(p.S)));
}

// The first query row that sees key j0 or a later one (row 0 unless causal).
fn first_query(j0: u32) -> u32 {
  if (p.causal == 0u) { return 0u; }
  return u32(clamp(i32(j0) - p.kv_offset, 0, i32(p.T)));
}

// One past the last query row that sees key j_last or an earlier one: T, or with a sliding window
// j_last - (S - T) + window.
fn queries_end(j_last: u32) -> u32 {
  if (p.window == 0u) { return p.T; }
  return u32(clamp(i32(j_last) - p.kv_offset + i32(p.window), 0, i32(p.T)));
}

// The first of the Hq / Hkv query heads that read kv head bhk = b Hkv + hk.
fn first_query_head(bhk: u32) -> u32 {
  return (bhk / p.Hkv) * p.Hq + (bhk % p.Hkv) * (p.Hq / p.Hkv);
}

// The keys j0 .. j0 + rows - 1 of kv head bhk = wid.y (batch b) that a dkv workgroup owns, the first of
// the query heads that read them (h0) and the first query row that sees any of them (i_start).
// With a sliding window, the rows from i_end on see none of them either.
struct KeyGroup {
  bhk: u32,
  b: u32,
  j0: u32,
  h0: u32,
  i_start: u32,
  i_end: u32,
}

fn key_group(wid: vec3<u32>, rows: u32) -> KeyGroup {
  let j0 = wid.x * rows;
  return KeyGroup(wid.y, wid.y / p.Hkv, j0, first_query_head(wid.y), first_query(j0), queries_end(j0 + rows - 1u));
}
