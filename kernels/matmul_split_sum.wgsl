// The second pass of a product split along k: c[i] = sum over s < splits of partial[s, i], in order of s
// (deterministic), converted to T. partial holds the f32 products of each slice of k, [splits, numel].
// Bindings: 0 Params (uniform); 1 partial: array<f32> read; 2 c: array<T> read_write; 3 bias: array<T> read
// (include/matmul_bias.wgsl: the product's bias, added to the sum of its f32 slices before the one rounding; N columns);
// 4 addend: array<T> read (include/matmul_addend.wgsl: the product's addend, alpha applied to that sum, before the same rounding).
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//!   splits: u32
//!   bias_offset: u32
//!   N: u32
//!   addend_offset: u32
//!   alpha: f32
//! bindings
//!   partial: array<f32> read
//!   c: array<T> read_write
//!   bias: array<T> read
//!   addend: array<T> read

{{include elementwise}}
{{include matmul_bias}}
{{include matmul_addend}}

fn element(i: u32) {
  var acc = 0.0;
  for (var s = 0u; s < p.splits; s++) { acc += partial[s * p.numel + i]; }
  c[i] = T(epilogue(acc, i % p.N, i));
}
