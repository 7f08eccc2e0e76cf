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

const WG: u32 = 64u;
{{include workgroup_reduce}}
{{include middle_axis}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * nwg.x;
  let valid = o < p.outer * p.inner;
  let base = middle_axis_base(o);
  var acc = 0.0;
  if (valid) {
    for (var k = lid; k < p.n; k += WG) {
      acc += f32(x[base + k * p.inner]);
    }
  }
  let total = workgroup_sum(lid, acc);
  if (lid == 0u && valid) { y[o] = T(total * p.scale); }
}
