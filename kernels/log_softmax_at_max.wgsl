// The log-softmax of each row of logits x [rows, C] at the row's maximum, a greedy pick's log-probability:
// with m_r = max_c x[r, c] and s_r = sum_c exp(x[r, c] - m_r), log_softmax(x)[r, c] = x[r, c] - m_r - log(s_r),
// which at x[r, c] = m_r is -log(s_r) (+0 where s_r is 1). A row of all -inf, or holding +inf or NaN, gets NaN (as the
// log-softmax there: x - m is NaN at the maximum).
// Bindings: 0 Params (uniform); 1 x: array<T> read [rows, C]; 2 out: array<f32> read_write [rows].
// Workgroup: 64 threads per row (include/row_workgroup.wgsl), one workgroup per row, 2-D grid beyond
// 65535 rows; one pass over the row (online softmax, include/row_softmax_stats.wgsl). Computes in f32.
alias T = f32;

//! params
//!   rows: u32
//!   C: u32
//! bindings
//!   x: array<T> read
//!   out: array<f32> read_write

{{include row_workgroup}}

{{include row_softmax_stats}}

fn row_main(row: u32, base: u32, lid: u32) {
  let st = row_softmax_stats(base, p.C, lid);
  if (lid == 0u) {
    // +0 where s is 1, as x - m - log(s) in torch.log_softmax (-log(1) is -0, and compilers fold 0 - log(s)
    // into it). s is 0 where every entry is -inf (its parts are never rescaled), and -log(0) would be +inf.
    var v = select(-log(st.s), 0.0, st.s == 1.0);
    if (st.m == f32_from_bits(0xff800000u)) { v = f32_from_bits(0x7fc00000u); }
    out[row] = v;
  }
}
