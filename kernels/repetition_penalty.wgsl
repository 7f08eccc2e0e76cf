// HF's RepetitionPenaltyLogitsProcessor over the tokens marked in each row's bit mask: for logits x [B, V],
// y[b, v] = x < 0 ? x * penalty : x / penalty where bit v of row b's mask is set, else x (in f32).
// Bindings: 0 Params (uniform); 1 x: array<T> read [B, V]; 2 seen: array<u32> read [B, W] (bit v % 32 of
// word v / 32); 3 y: array<T> read_write [B, V].
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//!   V: u32
//!   W: u32           // mask words per row, ceil(V / 32)
//!   penalty: f32
//! bindings
//!   x: array<T> read
//!   seen: array<u32> read
//!   y: array<T> read_write

{{include elementwise}}

fn element(i: u32) {
  let b = i / p.V;
  let v = i % p.V;
  let s = f32(x[i]);
  let hit = (seen[b * p.W + v / 32u] & (1u << (v % 32u))) != 0u;
  y[i] = T(select(s, select(s / p.penalty, s * p.penalty, s < 0.0), hit));
}
