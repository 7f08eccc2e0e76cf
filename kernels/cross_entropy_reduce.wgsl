// Cross-entropy reduction on the GPU (the count never leaves it): count = sum_n valid[n];
// out = sum_n loss[n] / count ('mean', NaN when count is 0 as in torch) or sum_n loss[n] ('sum').
// Bindings: 0 Params (uniform); 1 loss: array<f32> read ([N]); 2 valid: array<f32> read ([N]);
// 3 out: array<T> read_write ([1]); 4 count: array<f32> read_write ([1]).
// Workgroup: one workgroup of 256 threads strided over N, then tree reductions (fixed order).
alias T = f32;

//! params
//!   N: u32
//!   mean: u32
//! bindings
//!   loss: array<f32> read
//!   valid: array<f32> read
//!   out: array<T> read_write
//!   count: array<f32> read_write

const WG: u32 = 256u;
{{include workgroup_reduce}}

// Not const-evaluated, so NaN is allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var l = 0.0;
  var c = 0.0;
  for (var n = lid; n < p.N; n += WG) {
    l += loss[n];
    c += valid[n];
  }
  let total = workgroup_sum(lid, l);
  let n = workgroup_sum(lid, c);
  if (lid == 0u) {
    count[0] = n;
    if (p.mean == 1u) {
      if (n == 0.0) { out[0] = T(f32_from_bits(0x7fc00000u)); } else { out[0] = T(total / n); }
    } else {
      out[0] = T(total);
    }
  }
}
