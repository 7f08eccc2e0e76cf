// Total norm and clip coefficient of clip_grad_norm from the partial sums of squares:
// norm = sqrt(sum_k partial[k]), out[0] = norm, out[1] = min(1, max_norm / (norm + 1e-6)) (NaN for a NaN norm).
// Bindings: 0 Params (uniform); 1 partial: array<f32> read; 2 out: array<f32> read_write (2 elements).
// Workgroup: one workgroup of 256 threads, strided over the partials, then a tree reduction.

//! params
//!   count: u32
//!   max_norm: f32
//! bindings
//!   partial: array<f32> read
//!   out: array<f32> read_write

const WG: u32 = 256u;
{{include workgroup_reduce}}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var k = lid; k < p.count; k += WG) { s += partial[k]; }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) {
    let norm = sqrt(total);
    out[0] = norm;
    // torch clamps with max=1, which keeps NaN (a NaN norm makes every gradient NaN); min() may not.
    let c = p.max_norm / (norm + 1e-6);
    out[1] = select(min(1.0, c), c, (bitcast<u32>(c) & 0x7fffffffu) > 0x7f800000u);
  }
}
