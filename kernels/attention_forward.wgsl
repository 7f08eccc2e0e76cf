// Causal grouped-query attention forward, flash style: o[b, h, i] = sum_j softmax_j(s_ij) v[b, hk, j]
// with s_ij = scale * q[b, h, i] . k[b, hk, j] over the keys j that row i sees (causal: j <= i + S - T;
// sliding window, when window != 0: j > i + S - T - window; padding: mask[b, j] != 0), hk = h / (Hq / Hkv). Online softmax over key tiles, so no T x S matrix;
// lse[b, h, i] = log sum_j exp(s_ij) is kept for backward. A row that sees no key gets o = 0, lse = -inf.
// Bindings: 0 Params (uniform); 1 q [B, Hq, T, D]: T read; 2 k, 3 v [B, Hkv, S, D]: T read;
// 4 mask [B, S] raw 32-bit words read; 5 o [B, Hq, T, D]: T read_write; 6 lse [B, Hq, T]: f32 read_write.
// Workgroup: ROWS threads, one query row each; K/V tiles of BK keys in workgroup memory (f32);
// grid (ceil(T / ROWS), B * Hq). ELEM is T or vec4<T> (vec4 loads when D % 4 == 0). Accumulates in f32.
alias T = f32;

//! params from attention
//! bindings
//!   q: array<{{ELEM}}> read
//!   k: array<{{ELEM}}> read
//!   v: array<{{ELEM}}> read
//!   mask: array<u32> read
//!   o: array<{{ELEM}}> read_write
//!   lse: array<f32> read_write

{{include attention}}
{{include attention_rows}}
{{include online_softmax}}

{{include attention_v1}}

fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

@compute @workgroup_size(ROWS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = query_row(wid, lid);
  var qr: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  if (r.ok) {
    for (var c = 0u; c < p.D4; c++) { qr[c] = load_q(r.base + 4u * c, r.base + p.D) * p.scale; }
  }
  var m = -3.0e38;
  var l = 0.0;

  // Keys past the last row's causal limit, or before the first row's window, are seen by no row of this workgroup.
  let s_end = keys_seen(wid.x * ROWS, ROWS);
  for (var j0 = keys_from(wid.x * ROWS); j0 < s_end; j0 += p.BK) {
    let nk = load_kv_tiles(r.kv_base, j0, s_end, lid);
    if (r.ok) {
      for (var jj = 0u; jj < nk; jj++) {
        if (!visible(r.b, r.i, j0 + jj)) { continue; }
        let t = jj * p.D4;
        var s = 0.0;
        for (var c = 0u; c < p.D4; c++) { s += dot(qr[c], k_tile[t + c]); }
        let pj = online_softmax(s, &m, &l, &acc);
        for (var c = 0u; c < p.D4; c++) { acc[c] += pj * v_tile[t + c]; }
      }
    }
  }
  if (r.ok) {
    var inv = 0.0;
    if (l > 0.0) { inv = 1.0 / l; }
    for (var c = 0u; c < p.D4; c++) { store_o(r.base + 4u * c, r.base + p.D, acc[c] * inv); }
    var x = f32_from_bits(0xff800000u);
    if (l > 0.0) { x = m + log(l); }
    lse[r.bh * p.T + r.i] = x;
  }
}
