// Attention backward for the queries, FlashAttention-2 style: scores are recomputed tile by tile,
// never stored. With s_ij = scale q_i . k_j, P_ij = exp(s_ij - lse_i), dP_ij = dO_i . v_j and
// dS_ij = P_ij (dP_ij - delta_i): dq_i = scale * sum_j dS_ij k_j over the keys row i sees.
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: T read; 2 k, 3 v [B, Hkv, S, D]: T read;
// 4 mask [B, S] raw 32-bit words read; 5 d_o [B, Hq, T, D]: T read; 6 stats [B, Hq, T, 2] (lse, delta):
// f32 read; 7 dq [B, Hq, T, D]: T read_write.
// Workgroup: ROWS threads, one query row each; K/V tiles of BK keys in workgroup memory;
// grid (ceil(T / ROWS), B * Hq). Accumulates in f32.
alias T = f32;

const ROWS: u32 = 16u;
const CAP4: u32 = 512u;
const DMAX4: u32 = {{DMAX4}}u;

//! params from attention
//! bindings
//!   q: array<{{ELEM}}> read
//!   k: array<{{ELEM}}> read
//!   v: array<{{ELEM}}> read
//!   mask: array<u32> read
//!   d_o: array<{{ELEM}}> read
//!   stats: array<f32> read
//!   dq: array<{{ELEM}}> read_write

var<workgroup> k_tile: array<vec4<f32>, CAP4>;
var<workgroup> v_tile: array<vec4<f32>, CAP4>;

fn load_q(e: u32, end: u32) -> vec4<f32> { {{LOAD_Q}} }
fn load_k(e: u32, end: u32) -> vec4<f32> { {{LOAD_K}} }
fn load_v(e: u32, end: u32) -> vec4<f32> { {{LOAD_V}} }
fn load_d_o(e: u32, end: u32) -> vec4<f32> { {{LOAD_D_O}} }
fn store_dq(e: u32, end: u32, x: vec4<f32>) { {{STORE_DQ}} }

fn visible(b: u32, i: u32, j: u32) -> bool {
  if (p.causal != 0u && i32(j) > i32(i) + p.kv_offset) { return false; }
  if (p.has_mask != 0u && (mask[p.mask_offset + b * p.S + j] & p.mask_bits) == 0u) { return false; }
  return true;
}

@compute @workgroup_size(ROWS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let bh = wid.y;
  let b = bh / p.Hq;
  let hk = (bh % p.Hq) / (p.Hq / p.Hkv);
  let i0 = wid.x * ROWS;
  let i = i0 + lid;
  let row_ok = i < p.T;
  let q_base = (bh * p.T + i) * p.D;
  let kv_base = (b * p.Hkv + hk) * p.S * p.D;

  var qr: array<vec4<f32>, DMAX4>;
  var dor: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  var lse_i = 0.0;
  var delta_i = 0.0;
  if (row_ok) {
    for (var c = 0u; c < p.D4; c++) {
      qr[c] = load_q(q_base + 4u * c, q_base + p.D) * p.scale;
      dor[c] = load_d_o(q_base + 4u * c, q_base + p.D);
      acc[c] = vec4<f32>(0.0);
    }
    lse_i = stats[2u * (bh * p.T + i)];
    delta_i = stats[2u * (bh * p.T + i) + 1u];
  }

  var s_end = p.S;
  if (p.causal != 0u) {
    let last = i32(min(i0 + ROWS, p.T)) + p.kv_offset;
    s_end = u32(clamp(last, 0, i32(p.S)));
  }
  for (var j0 = 0u; j0 < s_end; j0 += p.BK) {
    let nk = min(p.BK, s_end - j0);
    workgroupBarrier();
    for (var x = lid; x < nk * p.D4; x += ROWS) {
      let row = kv_base + (j0 + x / p.D4) * p.D;
      let e = row + 4u * (x % p.D4);
      k_tile[x] = load_k(e, row + p.D);
      v_tile[x] = load_v(e, row + p.D);
    }
    workgroupBarrier();
    if (row_ok) {
      for (var jj = 0u; jj < nk; jj++) {
        if (!visible(b, i, j0 + jj)) { continue; }
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
  if (row_ok) {
    for (var c = 0u; c < p.D4; c++) { store_dq(q_base + 4u * c, q_base + p.D, acc[c] * p.scale); }
  }
}
