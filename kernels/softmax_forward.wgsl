// Softmax (LOG false) or log-softmax (LOG true) over the last axis of a contiguous [rows, C] tensor:
// softmax:     y[r, c] = exp(x[r, c] - m_r) / s_r
// log-softmax: y[r, c] = x[r, c] - m_r - log(s_r),   m_r = max_k x[r, k], s_r = sum_k exp(x[r, k] - m_r).
// A row of all -inf gives NaN everywhere (as torch.softmax and torch.log_softmax do).
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 y: array<T> read_write.
// Workgroup: 64 threads per row, strided over C; the max and the sum in one pass (include/row_softmax_stats.wgsl),
// then the output in a second; one workgroup per row, 2-D grid beyond 65535 rows. Computes in f32.
alias T = f32;

const LOG: bool = {{LOG}};

//! params
//!   rows: u32
//!   C: u32
//! bindings
//!   x: array<T> read
//!   y: array<T> read_write

{{include row_workgroup}}

{{include row_softmax_stats}}

fn row_main(row: u32, base: u32, lid: u32) {
  let st = row_softmax_stats(base, p.C, lid);
  let m = st.m;
  let all_neg_inf = m == f32_from_bits(0xff800000u);
  let inv = 1.0 / st.s;
  let lse = m + log(st.s);
  for (var c = lid; c < p.C; c += WG) {
    var v = select(exp(f32(x[base + c]) - m) * inv, f32(x[base + c]) - lse, LOG);
    if (all_neg_inf) { v = f32_from_bits(0x7fc00000u); }
    y[base + c] = T(v);
  }
}
