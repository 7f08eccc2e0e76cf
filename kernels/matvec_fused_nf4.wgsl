// The fused decode products of matvec_fused.wgsl (norm, q/k/v cat, residual add, SwiGLU, LoRA adapters)
// over NF4 weights (QLoRA): entry point include/matvec_fused_q.wgsl, weight reading include/dequant_nf4.wgsl,
// each chunk's absmax decoded from the double quantization in place (include/nf4_double_quant.wgsl).
// Up to three weights (parts 0-2; unused ones bound to part 0's): codes, absmax codes qa_i, scales s_i, offset
// o_i; dyn the dynamic map (every weight's is the same). Bindings: x [MR, K] as vec4<T>; r: residual or h (T);
// g: norm weight or h (vec4<T>); b: the adapters' B and the biases; y [MR, N]. Grid: groups of G ROWS rows (2-D).
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
//!   qa0: array<u32> read
//!   qa1: array<u32> read
//!   qa2: array<u32> read
//!   s0: array<f32> read
//!   s1: array<f32> read
//!   s2: array<f32> read
//!   dyn: array<f32> read

{{include nf4_values}}

{{include nf4_double_quant}}

{{include dequant_nf4}}

{{include matvec_fused_q}}

fn setup(li: u32) {
  nf4_setup(li);
}

fn load_codes(part: u32, i: u32) -> vec4<u32> {
  if (part == 0u) { return c0[i]; }
  if (part == 1u) { return c1[i]; }
  return c2[i];
}

/** Block b's absmax of weight `part`. */
fn block_absmax(part: u32, b: u32) -> f32 {
  if (part == 0u) { return nf4_absmax_of(b, qa0[b / 4u], s0[b / 256u], p.o0); }
  if (part == 1u) { return nf4_absmax_of(b, qa1[b / 4u], s1[b / 256u], p.o1); }
  return nf4_absmax_of(b, qa2[b / 4u], s2[b / 256u], p.o2);
}

fn chunk_dots(part: u32, nl: u32, ch: u32, w: vec4<u32>) -> array<f32, MR> {
  return nf4_dots(nl * p.K * 4u, p.K * 4u, ch, w, block_absmax(part, ch / 2u));
}

fn row_scale(part: u32, nl: u32) -> f32 {
  return 1.0;
}
