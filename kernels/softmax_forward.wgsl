// Softmax (LOG false) or log-softmax (LOG true) over the last axis of a contiguous [rows, C] tensor:
// softmax:     y[r, c] = exp(x[r, c] - m_r) / s_r
// log-softmax: y[r, c] = x[r, c] - m_r - log(s_r),   m_r = max_k x[r, k], s_r = sum_k exp(x[r, k] - m_r).
// A row of all -inf gives NaN everywhere (as torch.softmax and torch.log_softmax do).
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 y: array<T> read_write.
// Workgroup: 64 threads per row, strided over C, tree reductions in workgroup memory; one
// workgroup per row, 2-D grid beyond 65535 rows. Computes in f32.
alias T = f32;

const LOG: bool = {{LOG}};

//! params
//!   rows: u32
//!   C: u32
//! bindings
//!   x: array<T> read
//!   y: array<T> read_write

{{include row_workgroup}}

// Not const-evaluated, so NaN and infinities are allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

fn row_main(row: u32, base: u32, lid: u32) {
  let neg_inf = f32_from_bits(0xff800000u);
  var m = neg_inf;
  for (var c = lid; c < p.C; c += WG) { m = max(m, f32(x[base + c])); }
  m = workgroup_max(lid, m);
  var s = 0.0;
  for (var c = lid; c < p.C; c += WG) { s += exp(f32(x[base + c]) - m); }
  s = workgroup_sum(lid, s);
  let all_neg_inf = m == neg_inf;
  let inv = 1.0 / s;
  let lse = m + log(s);
  for (var c = lid; c < p.C; c += WG) {
    var v = select(exp(f32(x[base + c]) - m) * inv, f32(x[base + c]) - lse, LOG);
    if (all_neg_inf) { v = f32_from_bits(0x7fc00000u); }
    y[base + c] = T(v);
  }
}
