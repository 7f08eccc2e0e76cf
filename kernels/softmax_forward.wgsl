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

var<workgroup> partial: array<f32, 64>;

// Not const-evaluated, so NaN and infinities are allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

fn row_max(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] = max(partial[lid], partial[lid + s]); }
    workgroupBarrier();
  }
  let r = partial[0];
  workgroupBarrier();
  return r;
}

fn row_sum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let r = partial[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let neg_inf = f32_from_bits(0xff800000u);
  var m = neg_inf;
  for (var c = lid; c < p.C; c += 64u) { m = max(m, f32(x[base + c])); }
  m = row_max(lid, m);
  var s = 0.0;
  for (var c = lid; c < p.C; c += 64u) { s += exp(f32(x[base + c]) - m); }
  s = row_sum(lid, s);
  let all_neg_inf = m == neg_inf;
  let inv = 1.0 / s;
  let lse = m + log(s);
  for (var c = lid; c < p.C; c += 64u) {
    var v = select(exp(f32(x[base + c]) - m) * inv, f32(x[base + c]) - lse, LOG);
    if (all_neg_inf) { v = f32_from_bits(0x7fc00000u); }
    y[base + c] = T(v);
  }
}
