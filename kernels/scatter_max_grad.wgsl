// Gradient of max over the middle axis of [outer, n, inner]: dx[o, k, j] = g[o, j] if k == idx[o, j], else 0.
// Bindings: 0 Params (uniform); 1 g: array<T> read ([outer, inner]); 2 idx: array<i32> read ([outer, inner]);
// 3 dx: array<T> read_write ([outer, n, inner]). Workgroup: 256 threads, one dx element each; 2-D grid.
alias T = f32;

//! params
//!   outer: u32
//!   n: u32
//!   inner: u32
//! bindings
//!   g: array<T> read
//!   idx: array<i32> read
//!   dx: array<T> read_write

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.outer * p.n * p.inner) { return; }
  let j = i % p.inner;
  let k = (i / p.inner) % p.n;
  let o = i / (p.inner * p.n);
  let r = o * p.inner + j;
  dx[i] = select(T(0.0), g[r], u32(idx[r]) == k);
}
