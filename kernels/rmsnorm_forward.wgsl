// RMSNorm forward (Hugging Face LlamaRMSNorm) over the last axis of a contiguous [rows, C] tensor:
// r_r = 1 / sqrt(mean_k x[r, k]^2 + eps) in f32; y[r, c] = w[c] * T(x[r, c] * r_r); rstd[r] = r_r.
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 w: array<T> read ([C]); 3 y: array<T> read_write;
// 4 rstd: array<f32> read_write ([rows], saved for backward).
// Workgroup: 64 threads per row, strided over C, a tree reduction in workgroup memory; one
// workgroup per row, 2-D grid beyond 65535 rows.
alias T = f32;

//! params
//!   rows: u32
//!   C: u32
//!   eps: f32
//! bindings
//!   x: array<T> read
//!   w: array<T> read
//!   y: array<T> read_write
//!   rstd: array<f32> read_write

const T_IS_F16: bool = {{T_IS_F16}};

{{include row_workgroup}}
{{include round_to_t}}

fn row_main(row: u32, base: u32, lid: u32) {
  var s = 0.0;
  for (var c = lid; c < p.C; c += WG) {
    let v = f32(x[base + c]);
    s += v * v;
  }
  let r = inverseSqrt(workgroup_sum(lid, s) / f32(p.C) + p.eps);
  for (var c = lid; c < p.C; c += WG) {
    let h = round_to_t(f32(x[base + c]) * r);
    y[base + c] = T(f32(w[c]) * h);
  }
  if (lid == 0u) { rstd[row] = r; }
}
