// Attention backward for keys and values, FlashAttention-2 style: one thread per key row j of kv
// head hk sums over every query head h of its group (h / (Hq / Hkv) == hk) and every query row i
// that sees key j, recomputing P_ij = exp(scale q_i . k_j - lse_i) tile by tile:
// dv_j = sum P_ij dO_i; dk_j = scale * sum dS_ij q_i with dS_ij = P_ij (dO_i . v_j - delta_i).
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: T read; 2 k, 3 v [B, Hkv, S, D]: T read;
// 4 mask [B, S] raw 32-bit words read; 5 d_o [B, Hq, T, D]: T read; 6 stats [B, Hq, T, 2] (lse, delta):
// f32 read; 7 dk, 8 dv [B, Hkv, S, D]: T read_write.
// Workgroup: ROWS threads, one key row each; Q/dO tiles of BK query rows in workgroup memory;
// grid (ceil(S / ROWS), B * Hkv). Accumulates in f32.
alias T = f32;

const ROWS: u32 = 16u;
const CAP4: u32 = 512u;
const MAXQ: u32 = 64u;

//! params from attention
//! bindings
//!   q: array<{{ELEM}}> read
//!   k: array<{{ELEM}}> read
//!   v: array<{{ELEM}}> read
//!   mask: array<u32> read
//!   d_o: array<{{ELEM}}> read
//!   stats: array<f32> read
//!   dk: array<{{ELEM}}> read_write
//!   dv: array<{{ELEM}}> read_write

{{include attention}}

var<workgroup> q_tile: array<vec4<f32>, CAP4>;
var<workgroup> do_tile: array<vec4<f32>, CAP4>;
var<workgroup> stats_tile: array<vec2<f32>, MAXQ>;

{{include attention_v1}}

@compute @workgroup_size(ROWS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kg = key_group(wid, ROWS);
  let j = kg.j0 + lid;
  let key_ok = j < p.S;
  let kv_base = (kg.bhk * p.S + j) * p.D;

  var kr: array<vec4<f32>, DMAX4>;
  var vr: array<vec4<f32>, DMAX4>;
  var dk_acc: array<vec4<f32>, DMAX4>;
  var dv_acc: array<vec4<f32>, DMAX4>;
  if (key_ok) {
    for (var c = 0u; c < p.D4; c++) {
      kr[c] = load_k(kv_base + 4u * c, kv_base + p.D);
      vr[c] = load_v(kv_base + 4u * c, kv_base + p.D);
      dk_acc[c] = vec4<f32>(0.0);
      dv_acc[c] = vec4<f32>(0.0);
    }
  }

  // Query rows before the first key's causal limit (kg.i_start), or past the last key's window (kg.i_end),
  // see no key of this workgroup.
  for (var bh = kg.h0; bh < kg.h0 + p.Hq / p.Hkv; bh++) {
    for (var r0 = kg.i_start; r0 < kg.i_end; r0 += p.BK) {
      let nq = min(p.BK, p.T - r0);
      workgroupBarrier();
      for (var x = lid; x < nq * p.D4; x += ROWS) {
        let row = (bh * p.T + r0 + x / p.D4) * p.D;
        let e = row + 4u * (x % p.D4);
        q_tile[x] = load_q(e, row + p.D) * p.scale;
        do_tile[x] = load_d_o(e, row + p.D);
      }
      for (var x = lid; x < nq; x += ROWS) {
        let r = bh * p.T + r0 + x;
        stats_tile[x] = vec2<f32>(stats[2u * r], stats[2u * r + 1u]);
      }
      workgroupBarrier();
      if (key_ok) {
        for (var ii = 0u; ii < nq; ii++) {
          if (!visible(kg.b, r0 + ii, j)) { continue; }
          let t = ii * p.D4;
          var s = 0.0;
          var dp = 0.0;
          for (var c = 0u; c < p.D4; c++) {
            s += dot(q_tile[t + c], kr[c]);
            dp += dot(do_tile[t + c], vr[c]);
          }
          let st = stats_tile[ii];
          let pij = exp(s - st.x);
          let ds = pij * (dp - st.y);
          for (var c = 0u; c < p.D4; c++) {
            dv_acc[c] += pij * do_tile[t + c];
            dk_acc[c] += ds * q_tile[t + c];
          }
        }
      }
    }
  }
  if (key_ok) {
    for (var c = 0u; c < p.D4; c++) {
      store_dk(kv_base + 4u * c, kv_base + p.D, dk_acc[c]);
      store_dv(kv_base + 4u * c, kv_base + p.D, dv_acc[c]);
    }
  }
}
