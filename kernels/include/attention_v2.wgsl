// Shared by the v2 attention kernels (one subgroup per workgroup): the layout constants of a variant,
// chosen per adapter and head dim in kernelgen/attention.ts, and which keys a lane's block holds.
{{include attention}}

const SG: u32 = {{SG}}u;
const RPL: u32 = {{RPL}}u;
const TM: u32 = SG * RPL;
const DL: u32 = {{DL}}u;
const D4: u32 = SG * DL;
// Rows (keys, or queries for dkv) of a block: four a lane.
const BK: u32 = 4u * SG;
// Whether a lane keeps its RPL rows of q (or k) and dO (or v) in private arrays, or re-reads them
// where they are shared (fewer registers a lane at large D).
const KEEP_ROWS: bool = {{KEEP_ROWS}};
const KEPT: u32 = select(1u, RPL * D4, KEEP_ROWS);

// The rows r0 + 4 lane .. r0 + 4 lane + 3 of a block that a lane owns.
fn lane_rows(r0: u32, lane: u32) -> vec4<u32> {
  return vec4<u32>(r0 + 4u * lane) + vec4<u32>(0u, 1u, 2u, 3u);
}

// A lane's four keys of the block from j0 in batch b: which exist below s_end and are not padding
// (kept), and where their rows start in the kv head at kv_head (clamped to S - 1).
struct KeyBlock {
  key: vec4<u32>,
  kept: vec4<bool>,
  rows: vec4<u32>,
}

fn key_block(b: u32, kv_head: u32, j0: u32, s_end: u32, lane: u32) -> KeyBlock {
  let key = lane_rows(j0, lane);
  let kc = min(key, vec4<u32>(p.S - 1u));
  var kept = key < vec4<u32>(s_end);
  for (var n = 0u; n < 4u; n++) { kept[n] = kept[n] && key_kept(b, kc[n]); }
  return KeyBlock(key, kept, kv_head + kc * D4);
}

// Which of a lane's kept keys query row i sees (its causal limit, and its sliding window if any).
fn row_sees(kb: KeyBlock, i: u32) -> vec4<bool> {
  if (p.causal == 0u) { return kb.kept; }
  let last = vec4<i32>(i32(i) + p.kv_offset);
  var seen = kb.kept & (vec4<i32>(kb.key) <= last);
  if (p.window != 0u) { seen = seen & (vec4<i32>(kb.key) + vec4<i32>(i32(p.window)) > last); }
  return seen;
}

// The TM query rows from i0 of head bh (batch b) that a workgroup owns, and where the rows of its
// head of q and of its kv head start (in vec4).
struct QueryBlock {
  bh: u32,
  b: u32,
  i0: u32,
  q_head: u32,
  kv_head: u32,
}

fn query_block(wid: vec3<u32>) -> QueryBlock {
  let bh = wid.y;
  return QueryBlock(bh, bh / p.Hq, wid.x * TM, bh * p.T * D4, kv_head_of(bh) * p.S * D4);
}
