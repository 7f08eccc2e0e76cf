// Log-probabilities of rows of logits x [rows, C], read back compactly: with m_r = max_c x[r, c] and
// s_r = sum_c exp(x[r, c] - m_r), log_softmax(x)[r, c] = x[r, c] - m_r - log(s_r), taken at the row's target
// token and at its K largest entries. out [rows, K + 1, 2] (u32): entry 0 is (bits of the target's
// log-probability, target id); entries 1..K are the K largest in descending order (ties: lower index
// first), each (bits of its log-probability, its id). A target outside [0, C) gets NaN.
// Bindings: 0 Params; 1 x: array<T> read [rows, C]; 2 targets: array<i32> read [rows];
// 3 out: array<u32> read_write [rows, K + 1, 2].
// Workgroup: 64 threads per row (include/row_workgroup.wgsl), one workgroup per row, 2-D grid beyond
// 65535 rows. The j-th largest is a workgroup argmax over the entries after the (j-1)-th in the order
// (value descending, index ascending): K + 2 passes over the row, no sort and no scratch. Computes in f32.
alias T = f32;

//! params
//!   rows: u32
//!   C: u32
//!   K: u32
//! bindings
//!   x: array<T> read
//!   targets: array<i32> read
//!   out: array<u32> read_write

{{include row_workgroup}}

const NONE: u32 = 0xffffffffu;

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

// Not const-evaluated, so infinities and NaN are allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

// Whether (v, i) comes before (w, j) in the order of the top entries: larger value first, then lower
// index. Any value comes before (-inf, NONE); NaN comes before nothing.
fn ahead(v: f32, i: u32, w: f32, j: u32) -> bool {
  return v > w || (v == w && i < j);
}

// The workgroup's first (value, index) pair in that order.
fn workgroup_first(lid: u32, v: f32, i: u32) -> vec2<u32> {
  best_v[lid] = v;
  best_i[lid] = i;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s && ahead(best_v[lid + s], best_i[lid + s], best_v[lid], best_i[lid])) {
      best_v[lid] = best_v[lid + s];
      best_i[lid] = best_i[lid + s];
    }
    workgroupBarrier();
  }
  let r = vec2<u32>(bitcast<u32>(best_v[0]), best_i[0]);
  workgroupBarrier();
  return r;
}

fn row_main(row: u32, base: u32, lid: u32) {
  let neg_inf = f32_from_bits(0xff800000u);
  var m = neg_inf;
  for (var c = lid; c < p.C; c += WG) { m = max(m, f32(x[base + c])); }
  m = workgroup_max(lid, m);
  var s = 0.0;
  for (var c = lid; c < p.C; c += WG) { s += exp(f32(x[base + c]) - m); }
  s = workgroup_sum(lid, s);
  let lse = m + log(s);
  let o = row * (p.K + 1u) * 2u;
  if (lid == 0u) {
    let t = targets[row];
    let inside = t >= 0 && u32(t) < p.C;
    out[o] = bitcast<u32>(select(f32_from_bits(0x7fc00000u), f32(x[base + select(0u, u32(t), inside)]) - lse, inside));
    out[o + 1u] = bitcast<u32>(t);
  }
  // The previous pick, (+inf, NONE) before the first: every entry comes after it.
  var prev_v = f32_from_bits(0x7f800000u);
  var prev_i = NONE;
  for (var j = 0u; j < p.K; j++) {
    var bv = neg_inf;
    var bi = NONE;
    for (var c = lid; c < p.C; c += WG) {
      let v = f32(x[base + c]);
      let after = prev_i == NONE || ahead(prev_v, prev_i, v, c);
      if (after && ahead(v, c, bv, bi)) {
        bv = v;
        bi = c;
      }
    }
    let b = workgroup_first(lid, bv, bi);
    prev_v = bitcast<f32>(b.x);
    prev_i = b.y;
    if (lid == 0u) {
      out[o + 2u * (j + 1u)] = bitcast<u32>(prev_v - lse);
      out[o + 2u * (j + 1u) + 1u] = prev_i;
    }
  }
}
