// Fill: y[i] = value (v) or y[i] = start + i * step (arange), for i < numel.
// Bindings: 0 Params (uniform); 1 y: array<T> read_write. Workgroup: 256 threads; 2-D grid beyond 65535 workgroups.
alias T = f32;

//! params
//!   numel: u32
//!   mode: u32
//!   start: f32
//!   step: f32
//! bindings
//!   y: array<T> read_write

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.numel) { return; }
  if (p.mode == 0u) {
    y[i] = T(p.start);
  } else {
    y[i] = T(p.start + f32(i) * p.step);
  }
}
