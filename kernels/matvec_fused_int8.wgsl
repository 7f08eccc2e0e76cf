// The fused decode products of matvec_fused.wgsl (norm, q/k/v cat, residual add, SwiGLU, LoRA adapters)
// over int8 weights: entry point include/matvec_fused_q.wgsl, weight reading include/dequant_int8.wgsl.
// Up to three weights (parts 0-2; unused ones bound to part 0's), each codes [N_i, K] with its row absmaxes.
// Bindings: x [MR, K] as vec4<T>; r: residual or h (T); g: norm weight or h (vec4<T>); b: the adapters' B and the biases;
// y [MR, N]. Grid: groups of G ROWS rows (2-D); workgroup SG G threads.
enable subgroups;
alias T = f32;

//! params from matvec_fused_q
//! bindings
//!   x: array<vec4<T>> read
//!   r: array<T> read
//!   g: array<vec4<T>> read
//!   b: array<T> read
//!   y: array<T> read_write
//!   c0: array<vec4<u32>> read
//!   c1: array<vec4<u32>> read
//!   c2: array<vec4<u32>> read
//!   s0: array<f32> read
//!   s1: array<f32> read
//!   s2: array<f32> read

{{include dequant_int8}}

{{include matvec_fused_q}}

fn setup(li: u32) {}

fn load_codes(part: u32, i: u32) -> vec4<u32> {
  if (part == 0u) { return c0[i]; }
  if (part == 1u) { return c1[i]; }
  return c2[i];
}

fn chunk_dots(part: u32, nl: u32, ch: u32, w: vec4<u32>) -> array<f32, MR> {
  return int8_dots(nl * p.K * 4u, p.K * 4u, ch, w);
}

fn row_scale(part: u32, nl: u32) -> f32 {
  if (part == 0u) { return s0[nl]; }
  if (part == 1u) { return s1[nl]; }
  return s2[nl];
}
