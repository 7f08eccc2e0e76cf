// SwiGLU forward (LLaMA's MLP gate): y[i] = silu(gate[i]) * up[i] = gate[i] * sigmoid(gate[i]) * up[i],
// computed in f32 and stored as T. gate, up and y are contiguous and of the same size numel.
// Bindings: 0 Params (uniform); 1 gate: array<T> read; 2 up: array<T> read; 3 y: array<T> read_write.
// Workgroup: 256 threads, one element each; the grid is 2-D when it exceeds 65535 workgroups.
alias T = f32;

//! params
//!   numel: u32
//! bindings
//!   gate: array<T> read
//!   up: array<T> read
//!   y: array<T> read_write

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.numel) { return; }
  let g = f32(gate[i]);
  let s = 1.0 / (1.0 + exp(-g));
  y[i] = T(g * s * f32(up[i]));
}
