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

var<workgroup> partial: array<f32, 64>;

fn row_sum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  return partial[0];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var s = 0.0;
  for (var c = lid; c < p.C; c += 64u) { s += f32(dy[base + c]) * select(f32(y[base + c]), 1.0, LOG); }
  s = row_sum(lid, s);
  for (var c = lid; c < p.C; c += 64u) {
    let v = f32(y[base + c]);
    let g = f32(dy[base + c]);
    dx[base + c] = T(select(v * (g - s), g - exp(v) * s, LOG));
  }
}
