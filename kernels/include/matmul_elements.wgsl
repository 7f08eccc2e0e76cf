// Shared by the matmuls that stage scalar tiles of a and b (v1, v2): element (m, k) of a and (k, n)
// of b past their batch bases (operand_bases), read through the element strides of Params as f32; zero
// outside [M, K] and [K, N], so edge tiles stage zeros.
{{include batch_bases}}

// The bases of a and b at batch index z.
fn operand_bases(z: u32) -> vec2<u32> {
  return batch_bases(z, vec2<u32>(p.a_offset, p.b_offset), p.a_batch_strides, p.b_batch_strides);
}

fn a_at(base: u32, m: u32, k: u32) -> f32 {
  var v = 0.0;
  if (m < p.M && k < p.K) { v = f32(a[base + m * p.a_sm + k * p.a_sk]); }
  return v;
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
  var v = 0.0;
  if (n < p.N && k < p.K) { v = f32(b[base + k * p.b_sk + n * p.b_sn]); }
  return v;
}
