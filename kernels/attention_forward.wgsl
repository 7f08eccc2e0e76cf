// Causal grouped-query attention forward, flash style: o[b, h, i] = sum_j softmax_j(s_ij) v[b, hk, j]
// with s_ij = scale * q[b, h, i] . k[b, hk, j] over the keys j that row i sees (causal: j <= i + S - T;
// padding: mask[b, j] != 0), hk = h / (Hq / Hkv). Online softmax over key tiles, so no T x S matrix;
// lse[b, h, i] = log sum_j exp(s_ij) is kept for backward. A row that sees no key gets o = 0, lse = -inf.
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: T read; 2 k, 3 v [B, Hkv, S, D]: T read;
// 4 mask [B, S] raw 32-bit words read; 5 o [B, Hq, T, D]: T read_write; 6 lse [B, Hq, T]: f32 read_write.
// Workgroup: ROWS threads, one query row each; K/V tiles of BK keys in workgroup memory (f32);
// grid (ceil(T / ROWS), B * Hq). ELEM is T or vec4<T> (vec4 loads when D % 4 == 0). Accumulates in f32.
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
//!   o: array<{{ELEM}}> read_write
//!   lse: array<f32> read_write

var<workgroup> k_tile: array<vec4<f32>, CAP4>;
var<workgroup> v_tile: array<vec4<f32>, CAP4>;

fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

// Four elements from element e of a row ending at `end` (zeros past the end).
fn load_q(e: u32, end: u32) -> vec4<f32> { {{LOAD_Q}} }
fn load_k(e: u32, end: u32) -> vec4<f32> { {{LOAD_K}} }
fn load_v(e: u32, end: u32) -> vec4<f32> { {{LOAD_V}} }
fn store_o(e: u32, end: u32, x: vec4<f32>) { {{STORE_O}} }

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
  var acc: array<vec4<f32>, DMAX4>;
  if (row_ok) {
    for (var c = 0u; c < p.D4; c++) {
      qr[c] = load_q(q_base + 4u * c, q_base + p.D) * p.scale;
      acc[c] = vec4<f32>(0.0);
    }
  }
  var m = -3.0e38;
  var l = 0.0;

  // Keys past the last row's causal limit are seen by no row of this workgroup.
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
        for (var c = 0u; c < p.D4; c++) { s += dot(qr[c], k_tile[t + c]); }
        if (s > m) {
          let corr = exp(m - s);
          l *= corr;
          for (var c = 0u; c < p.D4; c++) { acc[c] *= corr; }
          m = s;
        }
        let pj = exp(s - m);
        l += pj;
        for (var c = 0u; c < p.D4; c++) { acc[c] += pj * v_tile[t + c]; }
      }
    }
  }
  if (row_ok) {
    var inv = 0.0;
    if (l > 0.0) { inv = 1.0 / l; }
    for (var c = 0u; c < p.D4; c++) { store_o(q_base + 4u * c, q_base + p.D, acc[c] * inv); }
    var r = f32_from_bits(0xff800000u);
    if (l > 0.0) { r = m + log(l); }
    lse[bh * p.T + i] = r;
  }
}
