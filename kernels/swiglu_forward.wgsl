// SwiGLU forward (LLaMA's MLP gate): y[i] = silu(gate[i]) * up[i] = gate[i] * sigmoid(gate[i]) * up[i],
// computed in f32 and stored as T. gate, up and y are contiguous and of the same size numel.
// Bindings: 0 Params (uniform); 1 gate: array<T> read; 2 up: array<T> read; 3 y: array<T> read_write.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//! bindings
//!   gate: array<T> read
//!   up: array<T> read
//!   y: array<T> read_write

{{include elementwise}}

fn element(i: u32) {
  let g = f32(gate[i]);
  let s = 1.0 / (1.0 + exp(-g));
  y[i] = T(g * s * f32(up[i]));
}
