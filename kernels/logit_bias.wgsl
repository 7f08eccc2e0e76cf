// OpenAI's logit_bias, as vLLM applies it: for logits x [B, V] and one bias row [V] (f32, 0 for tokens
// without a bias), y[b, v] = x[b, v] + bias[v], in f32.
// Bindings: 0 Params (uniform); 1 x: array<T> read [B, V]; 2 bias: array<f32> read [V];
// 3 y: array<T> read_write [B, V].
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//!   V: u32
//! bindings
//!   x: array<T> read
//!   bias: array<f32> read
//!   y: array<T> read_write

{{include elementwise}}

fn element(i: u32) {
  y[i] = T(f32(x[i]) + bias[i % p.V]);
}
