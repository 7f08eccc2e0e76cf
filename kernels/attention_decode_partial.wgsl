// Attention forward for one query row per head (T == 1, decoding against a KV cache), split over
// keys: thread (r, sp) runs the online softmax of query row r = b * Hq + h over keys
// [sp * split_len, (sp + 1) * split_len) and writes its partial state: m (running max of the scaled
// scores), l = sum_j exp(s_j - m) and acc = sum_j exp(s_j - m) v_j. attention_decode_combine merges the
// splits. Causal masking is a no-op at T == 1 (the row sees all S keys); a sliding window leaves out
// keys before S - window; the padding mask applies.
// Bindings: 0 Params (uniform); 1 q [B, Hq, 1, D]: T read; 2 k, 3 v [B, Hkv, S, D]: T read;
// 4 mask [B, S] raw 32-bit words read; 5 part_acc [B * Hq, n_split, D4]: vec4<f32> read_write;
// 6 part_ml [B * Hq, n_split, 2]: f32 read_write.
// Workgroup: 32 threads, one (row, split) each; 2-D grid beyond 65535 workgroups. Accumulates in f32.
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
{{include online_softmax}}

{{include attention_v1}}

const WG: u32 = 32u;
{{include attention_parts}}

// A thread per split sp of the keys of each row: partial t = r n_split + sp.
fn parts() -> u32 { return p.n_split; }

fn part(r: u32, sp: u32) {
  let ds = decode_split(r, sp);
  let t = ds.t;
  var qr: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  var m = -3.0e38;
  var l = 0.0;
  for (var c = 0u; c < p.D4; c++) { qr[c] = load_q(ds.q_base + 4u * c, ds.q_base + p.D) * p.scale; }
  for (var j = ds.j0; j < ds.j_end; j++) {
    if (!key_kept(ds.b, j)) { continue; }
    let row = ds.kv_base + j * p.D;
    var s = 0.0;
    for (var c = 0u; c < p.D4; c++) { s += dot(qr[c], load_k(row + 4u * c, row + p.D)); }
    let pj = online_softmax(s, &m, &l, &acc);
    for (var c = 0u; c < p.D4; c++) { acc[c] += pj * load_v(row + 4u * c, row + p.D); }
  }
  for (var c = 0u; c < p.D4; c++) { part_acc[t * p.D4 + c] = acc[c]; }
  part_ml[2u * t] = m;
  part_ml[2u * t + 1u] = l;
}
