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

var<workgroup> part_loss: array<f32, 256>;
var<workgroup> part_count: array<f32, 256>;

// Not const-evaluated, so NaN is allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var l = 0.0;
  var c = 0.0;
  for (var n = lid; n < p.N; n += 256u) {
    l += loss[n];
    c += valid[n];
  }
  part_loss[lid] = l;
  part_count[lid] = c;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (lid < k) {
      part_loss[lid] += part_loss[lid + k];
      part_count[lid] += part_count[lid + k];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let total = part_loss[0];
    let n = part_count[0];
    count[0] = n;
    if (p.mean == 1u) {
      if (n == 0.0) { out[0] = T(f32_from_bits(0x7fc00000u)); } else { out[0] = T(total / n); }
    } else {
      out[0] = T(total);
    }
  }
}
