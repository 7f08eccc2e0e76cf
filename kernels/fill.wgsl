// Fill: y[i] = value (v) or y[i] = start + i * step (arange), for i < numel.
// Bindings: 0 Params (uniform); 1 y: array<T> read_write. Workgroup: 256 threads in a grid-stride loop.
alias T = f32;

//! params
//!   numel: u32
//!   mode: u32
//!   start: f32
//!   step: f32
//! bindings
//!   y: array<T> read_write

{{include elementwise}}

fn element(i: u32) {
  if (p.mode == 0u) {
    y[i] = T(p.start);
  } else {
    y[i] = T(p.start + f32(i) * p.step);
  }
}
