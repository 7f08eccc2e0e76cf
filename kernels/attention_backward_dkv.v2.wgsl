// Attention backward for keys and values, v2 (subgroup sharing): the same result as
// attention_backward_dkv (dv_j = sum P_ij dO_i, dk_j = scale sum dS_ij q_i over every query head h of
// kv head hk's group and every query row i that sees key j; P_ij = exp(scale q_i . k_j - lse_i),
// dS_ij = P_ij (dO_i . v_j - delta_i)) with keys in the role of the forward's rows: one subgroup of SG
// lanes per workgroup, TM = SG * RPL key rows; per block of 4 SG query rows, S^T = (scale k) q^T and
// dP^T = v dO^T with lane l owning 4 queries and the k and v rows broadcast from the lanes that keep them;
// then dv += P^T dO and dk += dS^T q with lane l owning DL vec4 columns of D and P, dS values broadcast
// from the lane of each query. Needs D = 4 SG DL.
// SHARE_S and SHARE_DKV are unrolled on the host (kernelgen/attention.ts).
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: vec4<T> read; 2 k, 3 v [B, Hkv, S, D]: vec4<T> read;
// 4 mask [B, S] raw 32-bit words read; 5 d_o [B, Hq, T, D]: vec4<T> read; 6 stats [B, Hq, T, 2] (lse, delta):
// f32 read; 7 dk, 8 dv [B, Hkv, S, D]: vec4<T> read_write.
// Grid (ceil(S / TM), B * Hkv). Accumulates in f32.
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
//!   dk: array<vec4<T>> read_write
//!   dv: array<vec4<T>> read_write

{{include attention_v2}}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let kg = key_group(wid, TM);
  let kv_head = kg.bhk * p.S * D4;

  // This lane's key rows j0 + t SG + lane (t < RPL): k scaled, and v, when it keeps them.
  var kr: array<vec4<f32>, KEPT>;
  var vr: array<vec4<f32>, KEPT>;
  for (var t = 0u; KEEP_ROWS && t < RPL; t++) {
    let row = kv_head + min(kg.j0 + t * SG + lane, p.S - 1u) * D4;
    for (var d4 = 0u; d4 < D4; d4++) {
      kr[t * D4 + d4] = vec4<f32>(k[row + d4]) * p.scale;
      vr[t * D4 + d4] = vec4<f32>(v[row + d4]);
    }
  }
  // Whether key row j0 + r exists and is not padding.
  var kvis: array<bool, TM>;
  for (var r = 0u; r < TM; r++) {
    let j = kg.j0 + r;
    kvis[r] = j < p.S;
    if (j < p.S) { kvis[r] = key_kept(kg.b, j); }
  }
  var dk_acc: array<vec4<f32>, TM * DL>;
  var dv_acc: array<vec4<f32>, TM * DL>;

  // Query rows before the first key's causal limit (kg.i_start), or past the last key's window (kg.i_end),
  // see no key of this workgroup.
  for (var bh = kg.h0; bh < kg.h0 + p.Hq / p.Hkv; bh++) {
    let q_head = bh * p.T * D4;
    for (var r0 = kg.i_start; r0 < kg.i_end; r0 += BK) {
      let qi = lane_rows(r0, lane);
      let qc = min(qi, vec4<u32>(p.T - 1u));
      let qok = qi < vec4<u32>(p.T);
      let st = 2u * (vec4<u32>(bh * p.T) + qc);
      let lse4 = vec4<f32>(stats[st.x], stats[st.y], stats[st.z], stats[st.w]);
      let delta4 = vec4<f32>(stats[st.x + 1u], stats[st.y + 1u], stats[st.z + 1u], stats[st.w + 1u]);
      let qrow = q_head + qc * D4;
      // Zeroed explicitly: a bare `var` declared in a loop kept the previous iteration's values here.
      var sc = array<vec4<f32>, TM>();
      var dp = array<vec4<f32>, TM>();
      for (var d4 = 0u; d4 < D4; d4++) {
        // SHARE_S: kb0..kb3 and vb0..vb3, column d4 of this lane's 4 queries of q and dO transposed;
        // sc[t SG + j] += (k row from lane j) . [kb0..kb3]; dp[t SG + j] += (v row from lane j) . [vb0..vb3].
{{SHARE_S}}
      }
      // sc[r] becomes P^T and dp[r] dS^T of key row j0 + r at this lane's 4 queries.
      for (var r = 0u; r < TM; r++) {
        var vis = qok & vec4<bool>(kvis[r]);
        if (p.causal != 0u) {
          let last = vec4<i32>(qi) + vec4<i32>(p.kv_offset);
          vis = vis & (last >= vec4<i32>(i32(kg.j0 + r)));
          if (p.window != 0u) { vis = vis & (last < vec4<i32>(i32(kg.j0 + r + p.window))); }
        }
        let pr = select(vec4<f32>(0.0), exp(sc[r] - lse4), vis);
        sc[r] = pr;
        dp[r] = pr * (dp[r] - delta4);
      }
      // SHARE_DKV: for each lane g (constant), its queries' dO and q rows at this lane's columns;
      // dv_acc[r DL + u] += (sc[r] from lane g) . [dO rows], dk_acc[r DL + u] += (dp[r] from lane g) . [q rows].
{{SHARE_DKV}}
    }
  }
  for (var r = 0u; r < TM; r++) {
    let j = kg.j0 + r;
    if (j < p.S) {
      let row = kv_head + j * D4 + lane;
      for (var u = 0u; u < DL; u++) {
        dk[row + u * SG] = vec4<T>(dk_acc[r * DL + u] * p.scale);
        dv[row + u * SG] = vec4<T>(dv_acc[r * DL + u]);
      }
    }
  }
}
