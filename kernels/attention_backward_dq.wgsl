// Attention backward for the queries, FlashAttention-2 style: scores are recomputed tile by tile,
// never stored. With s_ij = scale q_i . k_j, P_ij = exp(s_ij - lse_i), dP_ij = dO_i . v_j and
// dS_ij = P_ij (dP_ij - delta_i): dq_i = scale * sum_j dS_ij k_j over the keys row i sees.
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: T read; 2 k, 3 v [B, Hkv, S, D]: T read;
// 4 mask [B, S] raw 32-bit words read; 5 d_o [B, Hq, T, D]: T read; 6 stats [B, Hq, T, 2] (lse, delta):
// f32 read; 7 dq [B, Hq, T, D]: T read_write.
// Workgroup: ROWS threads, one query row each; K/V tiles of BK keys in workgroup memory;
// grid (ceil(T / ROWS), B * Hq). Accumulates in f32.
alias T = f32;

//! params from attention
//! bindings
//!   q: array<{{ELEM}}> read
//!   k: array<{{ELEM}}> read
//!   v: array<{{ELEM}}> read
//!   mask: array<u32> read
//!   d_o: array<{{ELEM}}> read
//!   stats: array<f32> read
//!   dq: array<{{ELEM}}> read_write

{{include attention}}
{{include attention_rows}}

{{include attention_v1}}

@compute @workgroup_size(ROWS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = query_row(wid, lid);
  var qr: array<vec4<f32>, DMAX4>;
  var dor: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  var lse_i = 0.0;
  var delta_i = 0.0;
  if (r.ok) {
    for (var c = 0u; c < p.D4; c++) {
      qr[c] = load_q(r.base + 4u * c, r.base + p.D) * p.scale;
      dor[c] = load_d_o(r.base + 4u * c, r.base + p.D);
    }
    lse_i = stats[2u * (r.bh * p.T + r.i)];
    delta_i = stats[2u * (r.bh * p.T + r.i) + 1u];
  }

  let s_end = keys_seen(wid.x * ROWS, ROWS);
  for (var j0 = keys_from(wid.x * ROWS); j0 < s_end; j0 += p.BK) {
    let nk = load_kv_tiles(r.kv_base, j0, s_end, lid);
    if (r.ok) {
      for (var jj = 0u; jj < nk; jj++) {
        if (visible(r.b, r.i, j0 + jj)) {
          let t = jj * p.D4;
          var s = 0.0;
          var dp = 0.0;
          for (var c = 0u; c < p.D4; c++) {
            s += dot(qr[c], k_tile[t + c]);
            dp += dot(dor[c], v_tile[t + c]);
          }
          let ds = exp(s - lse_i) * (dp - delta_i);
          for (var c = 0u; c < p.D4; c++) { acc[c] += ds * k_tile[t + c]; }
        }
      }
    }
  }
  if (r.ok) {
    for (var c = 0u; c < p.D4; c++) { store_dq(r.base + 4u * c, r.base + p.D, acc[c] * p.scale); }
  }
}
