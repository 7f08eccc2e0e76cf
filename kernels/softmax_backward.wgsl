// Backward over the last axis of contiguous [rows, C] tensors, from the output y:
// softmax (LOG false):     dx[r, c] = y[r, c] * (dy[r, c] - sum_k dy[r, k] * y[r, k])
// log-softmax (LOG true):  dx[r, c] = dy[r, c] - exp(y[r, c]) * sum_k dy[r, k]
// Bindings: 0 Params (uniform); 1 y: array<T> read; 2 dy: array<T> read; 3 dx: array<T> read_write.
// Workgroup: 64 threads per row, strided over C, a tree reduction in workgroup memory; one
// workgroup per row, 2-D grid beyond 65535 rows. Computes in f32.
alias T = f32;

const LOG: bool = {{LOG}};

//! params
//!   rows: u32
//!   C: u32
//! bindings
//!   y: array<T> read
//!   dy: array<T> read
//!   dx: array<T> read_write

{{include row_workgroup}}

fn row_main(row: u32, base: u32, lid: u32) {
  var s = 0.0;
  for (var c = lid; c < p.C; c += WG) { s += f32(dy[base + c]) * select(f32(y[base + c]), 1.0, LOG); }
  s = workgroup_sum(lid, s);
  for (var c = lid; c < p.C; c += WG) {
    let v = f32(y[base + c]);
    let g = f32(dy[base + c]);
    dx[base + c] = T(select(v * (g - s), g - exp(v) * s, LOG));
  }
}
