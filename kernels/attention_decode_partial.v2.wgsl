// Attention forward for one query row per head (T == 1, decoding against a KV cache), split over keys,
// a subgroup per (row, split) for GPUs: lane l holds vec4 columns l, l + SG, ... of D (LPD of them), so a
// key row is read by the whole subgroup at once, neighbouring lanes at neighbouring addresses; the lanes'
// partial dot products are summed with subgroupAdd and every lane runs the same online softmax on the
// sum. Writes the partial state of attention_decode_partial (m, l, acc), merged by
// attention_decode_combine. Causal masking is a no-op at T == 1; a sliding window leaves out keys
// before S - window; the padding mask applies.
// Bindings: as attention_decode_partial. Workgroup SG threads (one subgroup); a workgroup per
// (row, split), 2-D grid beyond 65535 workgroups. Accumulates in f32.
enable subgroups;
alias T = f32;

//! params from attention
//! bindings
//!   q: array<{{ELEM}}> read
//!   k: array<{{ELEM}}> read
//!   v: array<{{ELEM}}> read
//!   mask: array<u32> read
//!   part_acc: array<vec4<f32>> read_write
//!   part_ml: array<f32> read_write

{{include attention}}
{{include attention_decode}}
{{include attention_v1}}

const SG: u32 = {{SG}}u;
const LPD: u32 = {{LPD}}u;

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= p.B * p.Hq * p.n_split) { return; }
  let ds = decode_split(t / p.n_split, t % p.n_split);
  var qr: array<vec4<f32>, LPD>;
  var acc: array<vec4<f32>, LPD>;
  for (var i = 0u; i < LPD; i++) {
    let c = lane + i * SG;
    if (c < p.D4) { qr[i] = load_q(ds.q_base + 4u * c, ds.q_base + p.D) * p.scale; }
  }
  var m = -3.0e38;
  var l = 0.0;
  for (var j = ds.j0; j < ds.j_end; j++) {
    if (!key_kept(ds.b, j)) { continue; }
    let row = ds.kv_base + j * p.D;
    var part = 0.0;
    for (var i = 0u; i < LPD; i++) {
      let c = lane + i * SG;
      if (c < p.D4) { part += dot(qr[i], load_k(row + 4u * c, row + p.D)); }
    }
    let s = subgroupAdd(part);
    let m_new = max(m, s);
    let corr = exp(m - m_new);
    let pj = exp(s - m_new);
    l = l * corr + pj;
    for (var i = 0u; i < LPD; i++) {
      let c = lane + i * SG;
      if (c < p.D4) { acc[i] = acc[i] * corr + pj * load_v(row + 4u * c, row + p.D); }
    }
    m = m_new;
  }
  for (var i = 0u; i < LPD; i++) {
    let c = lane + i * SG;
    if (c < p.D4) { part_acc[t * p.D4 + c] = acc[i]; }
  }
  if (lane == 0u) {
    part_ml[2u * t] = m;
    part_ml[2u * t + 1u] = l;
  }
}
