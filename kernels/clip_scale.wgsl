// Scales one gradient in place by the clip coefficient: g[offset + i] *= coef[1], for i < numel.
// Bindings: 0 Params (uniform); 1 g: array<T> read_write; 2 coef: array<f32> read ([norm, coefficient]).
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//!   offset: u32
//! bindings
//!   g: array<T> read_write
//!   coef: array<f32> read

{{include elementwise}}

fn element(i: u32) {
  g[p.offset + i] = T(f32(g[p.offset + i]) * coef[1]);
}
