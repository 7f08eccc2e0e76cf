// SwiGLU backward, both gradients in one pass. With s = sigmoid(gate), silu(gate) = gate * s and
// silu'(gate) = s * (1 + gate * (1 - s)): d_gate = dy * up * silu'(gate), d_up = dy * silu(gate);
// computed in f32 and stored as T. All buffers are contiguous and of the same size numel.
// Bindings: 0 Params (uniform); 1 gate: array<T> read; 2 up: array<T> read; 3 dy: array<T> read;
// 4 d_gate: array<T> read_write; 5 d_up: array<T> read_write.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//! bindings
//!   gate: array<T> read
//!   up: array<T> read
//!   dy: array<T> read
//!   d_gate: array<T> read_write
//!   d_up: array<T> read_write

{{include elementwise}}

fn element(i: u32) {
  let g = f32(gate[i]);
  let u = f32(up[i]);
  let d = f32(dy[i]);
  let s = 1.0 / (1.0 + exp(-g));
  d_gate[i] = T(d * u * s * (1.0 + g * (1.0 - s)));
  d_up[i] = T(d * g * s);
}
