// Causal grouped-query attention forward, v2 (subgroup sharing): the same result as attention_forward
// (o = softmax-weighted values over the keys each row sees, lse = log sum exp, an empty row gives o = 0,
// lse = -inf) computed as two small matmuls per block of BK = 4 SG keys, in the layout of matmul.v3.
// One subgroup per workgroup (workgroup size SG = the adapter's subgroup size), no workgroup memory, no
// barriers; TM = SG * RPL query rows per workgroup. S = (scale q) k^T: lane l keeps its RPL rows of q in
// private memory and owns 4 keys (4l .. 4l + 3 of the block); q values reach the other lanes through
// subgroupBroadcast. Online softmax per row (subgroupMax for the block's row max; the row sum stays
// per lane until the end). O += P v: lane l owns DL vec4 columns of D (l, l + SG, ...); P values of
// lane g's keys are broadcast while every lane loads its own columns of those keys' v rows, so each
// k and v element is loaded once per workgroup. Rows past T and keys past S are clamped on load, never
// stored, never seen. Needs D = 4 SG DL.
// SHARE_S and SHARE_PV are the sharing steps unrolled on the host (kernelgen/attention.ts): subgroupBroadcast
// takes only constant lane indices.
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: vec4<T> read; 2 k, 3 v [B, Hkv, S, D]: vec4<T> read;
// 4 mask [B, S] raw 32-bit words read; 5 o [B, Hq, T, D]: vec4<T> read_write; 6 lse [B, Hq, T]: f32 read_write.
// Grid (ceil(T / TM), B * Hq). Accumulates in f32.
enable subgroups;
alias T = f32;

//! params from attention
//! bindings
//!   q: array<vec4<T>> read
//!   k: array<vec4<T>> read
//!   v: array<vec4<T>> read
//!   mask: array<u32> read
//!   o: array<vec4<T>> read_write
//!   lse: array<f32> read_write

{{include attention_v2}}

fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let blk = query_block(wid);

  // This lane's query rows i0 + t SG + lane (t < RPL), scaled, when it keeps them.
  var qr: array<vec4<f32>, KEPT>;
  for (var t = 0u; KEEP_ROWS && t < RPL; t++) {
    let row = blk.q_head + min(blk.i0 + t * SG + lane, p.T - 1u) * D4;
    for (var d4 = 0u; d4 < D4; d4++) { qr[t * D4 + d4] = vec4<f32>(q[row + d4]) * p.scale; }
  }
  var acc: array<vec4<f32>, TM * DL>;
  var m: array<f32, TM>;
  var l: array<f32, TM>;
  for (var r = 0u; r < TM; r++) { m[r] = -3.0e38; }

  // Keys past the last row's causal limit, or before the first row's window, are seen by no row of this workgroup.
  let s_end = keys_seen(blk.i0, TM);
  for (var j0 = keys_from(blk.i0); j0 < s_end; j0 += BK) {
    let keys = key_block(blk.b, blk.kv_head, j0, s_end, lane);
    // Zeroed explicitly: a bare `var` declared in a loop kept the previous iteration's values here.
    var sc = array<vec4<f32>, TM>();
    for (var d4 = 0u; d4 < D4; d4++) {
      // SHARE_S: kb0..kb3, column d4 of this lane's 4 keys transposed (kbc = element c of each key);
      // for each t < RPL, a = this lane's query row t at d4; for each lane j (constant),
      // sc[t SG + j] += (a from lane j) . [kb0..kb3].
{{SHARE_S}}
    }
    // Online softmax: sc[r] becomes this lane's 4 probabilities of row i0 + r, rescaled to the new row max.
    for (var r = 0u; r < TM; r++) {
      let vis = row_sees(keys, blk.i0 + r);
      let s = sc[r];
      let sm = select(vec4<f32>(-3.0e38), s, vis);
      let mn = max(m[r], subgroupMax(max(max(sm.x, sm.y), max(sm.z, sm.w))));
      let corr = exp(m[r] - mn);
      let pr = select(vec4<f32>(0.0), exp(s - mn), vis);
      l[r] = l[r] * corr + (pr.x + pr.y + pr.z + pr.w);
      m[r] = mn;
      sc[r] = pr;
      for (var u = 0u; u < DL; u++) { acc[r * DL + u] *= corr; }
    }
    // SHARE_PV: for each lane g (constant), its keys' v rows at this lane's columns, and for each row r
    // acc[r DL + u] += (sc[r] from lane g) . [v rows].
{{SHARE_PV}}
  }
  for (var r = 0u; r < TM; r++) {
    let lt = subgroupAdd(l[r]);
    let i = blk.i0 + r;
    if (i < p.T) {
      var inv = 0.0;
      if (lt > 0.0) { inv = 1.0 / lt; }
      let row = blk.q_head + i * D4 + lane;
      for (var u = 0u; u < DL; u++) { o[row + u * SG] = vec4<T>(acc[r * DL + u] * inv); }
      if (lane == 0u) {
        var x = f32_from_bits(0xff800000u);
        if (lt > 0.0) { x = m[r] + log(lt); }
        lse[blk.bh * p.T + i] = x;
      }
    }
  }
}
