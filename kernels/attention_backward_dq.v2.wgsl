// Attention backward for the queries, v2 (subgroup sharing): the same result as attention_backward_dq
// (dq_i = scale sum_j dS_ij k_j, dS_ij = P_ij (dO_i . v_j - delta_i), P_ij = exp(scale q_i . k_j - lse_i)
// over the keys row i sees) in the layout of attention_forward.v2: one subgroup of SG lanes per workgroup,
// TM = SG * RPL query rows; per block of BK = 4 SG keys, S = (scale q) k^T and dP = dO v^T with lane l
// owning 4 keys and the rows of q and dO broadcast from the lanes that keep them; then dq += dS k with
// lane l owning DL vec4 columns of D and dS values broadcast from the lane of each key. Needs D = 4 SG DL.
// SHARE_S and SHARE_DQ are unrolled on the host (ops/attention.ts).
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: vec4<T> read; 2 k, 3 v [B, Hkv, S, D]: vec4<T> read;
// 4 mask [B, S] raw 32-bit words read; 5 d_o [B, Hq, T, D]: vec4<T> read; 6 stats [B, Hq, T, 2] (lse, delta):
// f32 read; 7 dq [B, Hq, T, D]: vec4<T> read_write.
// Grid (ceil(T / TM), B * Hq). Accumulates in f32.
enable subgroups;
alias T = f32;

const SG: u32 = {{SG}}u;
const RPL: u32 = {{RPL}}u;
const TM: u32 = SG * RPL;
const DL: u32 = {{DL}}u;
const D4: u32 = SG * DL;
const BK: u32 = 4u * SG;

//! params from attention
//! bindings
//!   q: array<vec4<T>> read
//!   k: array<vec4<T>> read
//!   v: array<vec4<T>> read
//!   mask: array<u32> read
//!   d_o: array<vec4<T>> read
//!   stats: array<f32> read
//!   dq: array<vec4<T>> read_write

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let bh = wid.y;
  let b = bh / p.Hq;
  let hk = (bh % p.Hq) / (p.Hq / p.Hkv);
  let i0 = wid.x * TM;
  let q_head = bh * p.T * D4;
  let kv_head = (b * p.Hkv + hk) * p.S * D4;

  // This lane's query rows i0 + t SG + lane (t < RPL): q scaled, and dO.
  var qr: array<vec4<f32>, RPL * D4>;
  var dor: array<vec4<f32>, RPL * D4>;
  for (var t = 0u; t < RPL; t++) {
    let row = q_head + min(i0 + t * SG + lane, p.T - 1u) * D4;
    for (var d4 = 0u; d4 < D4; d4++) {
      qr[t * D4 + d4] = vec4<f32>(q[row + d4]) * p.scale;
      dor[t * D4 + d4] = vec4<f32>(d_o[row + d4]);
    }
  }
  var lse_r: array<f32, TM>;
  var delta_r: array<f32, TM>;
  for (var r = 0u; r < TM; r++) {
    let st = 2u * (bh * p.T + min(i0 + r, p.T - 1u));
    lse_r[r] = stats[st];
    delta_r[r] = stats[st + 1u];
  }
  var acc: array<vec4<f32>, TM * DL>;

  var s_end = p.S;
  if (p.causal != 0u) {
    let last = i32(min(i0 + TM, p.T)) + p.kv_offset;
    s_end = u32(clamp(last, 0, i32(p.S)));
  }
  for (var j0 = 0u; j0 < s_end; j0 += BK) {
    let key = vec4<u32>(j0 + 4u * lane) + vec4<u32>(0u, 1u, 2u, 3u);
    let kc = min(key, vec4<u32>(p.S - 1u));
    var kvis = key < vec4<u32>(s_end);
    if (p.has_mask != 0u) {
      let mrow = p.mask_offset + b * p.S;
      for (var n = 0u; n < 4u; n++) { kvis[n] = kvis[n] && (mask[mrow + kc[n]] & p.mask_bits) != 0u; }
    }
    let k0 = kv_head + kc.x * D4;
    let k1 = kv_head + kc.y * D4;
    let k2 = kv_head + kc.z * D4;
    let k3 = kv_head + kc.w * D4;
    // Zeroed explicitly: a bare `var` declared in a loop kept the previous iteration's values here.
    var sc = array<vec4<f32>, TM>();
    var dp = array<vec4<f32>, TM>();
    for (var d4 = 0u; d4 < D4; d4++) {
      let t0 = vec4<f32>(k[k0 + d4]);
      let t1 = vec4<f32>(k[k1 + d4]);
      let t2 = vec4<f32>(k[k2 + d4]);
      let t3 = vec4<f32>(k[k3 + d4]);
      let kb0 = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
      let kb1 = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
      let kb2 = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
      let kb3 = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
      let w0 = vec4<f32>(v[k0 + d4]);
      let w1 = vec4<f32>(v[k1 + d4]);
      let w2 = vec4<f32>(v[k2 + d4]);
      let w3 = vec4<f32>(v[k3 + d4]);
      let vb0 = vec4<f32>(w0.x, w1.x, w2.x, w3.x);
      let vb1 = vec4<f32>(w0.y, w1.y, w2.y, w3.y);
      let vb2 = vec4<f32>(w0.z, w1.z, w2.z, w3.z);
      let vb3 = vec4<f32>(w0.w, w1.w, w2.w, w3.w);
      // SHARE_S: sc[t SG + j] += (qr from lane j) . [kb0..kb3]; dp[t SG + j] += (dor from lane j) . [vb0..vb3].
{{SHARE_S}}
    }
    // sc[r] becomes dS of row i0 + r at this lane's 4 keys.
    for (var r = 0u; r < TM; r++) {
      var vis = kvis;
      if (p.causal != 0u) {
        let lim = vec4<i32>(i32(i0 + r) + p.kv_offset);
        vis = vis & (vec4<i32>(key) <= lim);
      }
      let pr = select(vec4<f32>(0.0), exp(sc[r] - lse_r[r]), vis);
      sc[r] = pr * (dp[r] - delta_r[r]);
    }
    // SHARE_DQ: for each lane g (constant), its keys' k rows at this lane's columns; acc[r DL + u] += (sc[r] from lane g) . [k rows].
{{SHARE_DQ}}
  }
  for (var r = 0u; r < TM; r++) {
    let i = i0 + r;
    if (i < p.T) {
      let row = q_head + i * D4 + lane;
      for (var u = 0u; u < DL; u++) { dq[row + u * SG] = vec4<T>(acc[r * DL + u] * p.scale); }
    }
  }
}
