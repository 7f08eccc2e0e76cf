// Attention backward for the queries, v2 (subgroup sharing): the same result as attention_backward_dq
// (dq_i = scale sum_j dS_ij k_j, dS_ij = P_ij (dO_i . v_j - delta_i), P_ij = exp(scale q_i . k_j - lse_i)
// over the keys row i sees) in the layout of attention_forward.v2: one subgroup of SG lanes per workgroup,
// TM = SG * RPL query rows; per block of BK = 4 SG keys, S = (scale q) k^T and dP = dO v^T with lane l
// owning 4 keys and the rows of q and dO broadcast from the lanes that keep them; then dq += dS k with
// lane l owning DL vec4 columns of D and dS values broadcast from the lane of each key. Needs D = 4 SG DL.
// SHARE_S and SHARE_DQ are unrolled on the host (kernelgen/attention.ts).
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: vec4<T> read; 2 k, 3 v [B, Hkv, S, D]: vec4<T> read;
// 4 mask [B, S] raw 32-bit words read; 5 d_o [B, Hq, T, D]: vec4<T> read; 6 stats [B, Hq, T, 2] (lse, delta):
// f32 read; 7 dq [B, Hq, T, D]: vec4<T> read_write.
// Grid (ceil(T / TM), B * Hq). Accumulates in f32.
enable subgroups;
alias T = f32;

//! params from attention
//! bindings
//!   q: array<vec4<T>> read
//!   k: array<vec4<T>> read
//!   v: array<vec4<T>> read
//!   mask: array<u32> read
//!   d_o: array<vec4<T>> read
//!   stats: array<f32> read
//!   dq: array<vec4<T>> read_write

{{include attention_v2}}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let blk = query_block(wid);

  // This lane's query rows i0 + t SG + lane (t < RPL): q scaled, and dO, when it keeps them.
  var qr: array<vec4<f32>, KEPT>;
  var dor: array<vec4<f32>, KEPT>;
  for (var t = 0u; KEEP_ROWS && t < RPL; t++) {
    let row = blk.q_head + min(blk.i0 + t * SG + lane, p.T - 1u) * D4;
    for (var d4 = 0u; d4 < D4; d4++) {
      qr[t * D4 + d4] = vec4<f32>(q[row + d4]) * p.scale;
      dor[t * D4 + d4] = vec4<f32>(d_o[row + d4]);
    }
  }
  var lse_r: array<f32, TM>;
  var delta_r: array<f32, TM>;
  for (var r = 0u; r < TM; r++) {
    let st = 2u * (blk.bh * p.T + min(blk.i0 + r, p.T - 1u));
    lse_r[r] = stats[st];
    delta_r[r] = stats[st + 1u];
  }
  var acc: array<vec4<f32>, TM * DL>;

  let s_end = keys_seen(blk.i0, TM);
  for (var j0 = keys_from(blk.i0); j0 < s_end; j0 += BK) {
    let keys = key_block(blk.b, blk.kv_head, j0, s_end, lane);
    // Zeroed explicitly: a bare `var` declared in a loop kept the previous iteration's values here.
    var dp = array<vec4<f32>, TM>();
    var sc = array<vec4<f32>, TM>();
    for (var d4 = 0u; d4 < D4; d4++) {
      // SHARE_S: kb0..kb3 and vb0..vb3, column d4 of this lane's 4 keys of k and v transposed;
      // sc[t SG + j] += (q row from lane j) . [kb0..kb3]; dp[t SG + j] += (dO row from lane j) . [vb0..vb3].
{{SHARE_S}}
    }
    // sc[r] becomes dS of row i0 + r at this lane's 4 keys.
    for (var r = 0u; r < TM; r++) {
      let vis = row_sees(keys, blk.i0 + r);
      let pr = select(vec4<f32>(0.0), exp(sc[r] - lse_r[r]), vis);
      sc[r] = pr * (dp[r] - delta_r[r]);
    }
    // SHARE_DQ: for each lane g (constant), its keys' k rows at this lane's columns; acc[r DL + u] += (sc[r] from lane g) . [k rows].
{{SHARE_DQ}}
  }
  for (var r = 0u; r < TM; r++) {
    let i = blk.i0 + r;
    if (i < p.T) {
      let row = blk.q_head + i * D4 + lane;
      for (var u = 0u; u < DL; u++) { dq[row + u * SG] = vec4<T>(acc[r * DL + u] * p.scale); }
    }
  }
}
