// Sum over the middle axis of a contiguous [outer, n, inner] tensor: y[o, j] = sum_k x[o, k, j].
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 y: array<T> read_write ([outer, inner]).
// Workgroup: 64 threads per output element, strided over k, then a tree reduction in workgroup
// memory; one workgroup per output, 2-D grid beyond 65535 outputs. Accumulates in f32.
alias T = f32;

//! params
//!   outer: u32
//!   n: u32
//!   inner: u32
//!   scale: f32
//! bindings
//!   x: array<T> read
//!   y: array<T> read_write

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * nwg.x;
  let valid = o < p.outer * p.inner;
  let outer_i = o / max(p.inner, 1u);
  let inner_i = o % max(p.inner, 1u);
  let base = outer_i * p.n * p.inner + inner_i;
  var acc = 0.0;
  if (valid) {
    for (var k = lid; k < p.n; k += 64u) {
      acc += f32(x[base + k * p.inner]);
    }
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u && valid) { y[o] = T(partial[0] * p.scale); }
}
