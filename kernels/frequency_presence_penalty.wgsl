// OpenAI's frequency and presence penalties, as vLLM applies them: for logits x [B, V] and each row's
// token counts c [B, V], y = (x - frequency * c) - presence * (c > 0 ? 1 : 0), in f32.
// Bindings: 0 Params (uniform); 1 x: array<T> read [B, V]; 2 counts: array<i32> read [B, V];
// 3 y: array<T> read_write [B, V].
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//!   frequency: f32
//!   presence: f32
//! bindings
//!   x: array<T> read
//!   counts: array<i32> read
//!   y: array<T> read_write

{{include elementwise}}

fn element(i: u32) {
  let c = counts[i];
  let s = f32(x[i]) - p.frequency * f32(c);
  y[i] = T(s - select(0.0, p.presence, c > 0));
}
