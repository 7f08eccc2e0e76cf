// RMSNorm backward for dx over the last axis of contiguous [rows, C] tensors. With r = rstd[r],
// xhat = x * r and dh = dy * w: dx[r, c] = r * (dh[r, c] - xhat[r, c] * mean_k dh[r, k] * xhat[r, k]).
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 w: array<T> read ([C]); 3 dy: array<T> read;
// 4 rstd: array<f32> read ([rows]); 5 dx: array<T> read_write.
// Workgroup: 64 threads per row, strided over C, a tree reduction in workgroup memory; one
// workgroup per row, 2-D grid beyond 65535 rows. Computes in f32.
alias T = f32;

//! params
//!   rows: u32
//!   C: u32
//! bindings
//!   x: array<T> read
//!   w: array<T> read
//!   dy: array<T> read
//!   rstd: array<f32> read
//!   dx: array<T> read_write

{{include row_workgroup}}

fn row_main(row: u32, base: u32, lid: u32) {
  let r = rstd[row];
  var s = 0.0;
  for (var c = lid; c < p.C; c += WG) {
    s += f32(dy[base + c]) * f32(w[c]) * f32(x[base + c]) * r;
  }
  let m = workgroup_sum(lid, s) / f32(p.C);
  for (var c = lid; c < p.C; c += WG) {
    let xhat = f32(x[base + c]) * r;
    dx[base + c] = T(r * (f32(dy[base + c]) * f32(w[c]) - xhat * m));
  }
}
