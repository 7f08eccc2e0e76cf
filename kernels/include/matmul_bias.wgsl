/// Shared by the matmul and matrix-vector kernels: the bias epilogue of F.linear (addmm, cuBLASLt's bias
/// epilogue): c = T(sum + bias[n]), the f32 sum and the bias added in f32 and rounded once. BIAS (a define)
/// is false for a product without a bias (the binding is then another read-only buffer, never read) and for
/// the f32 slices of a product split along k, whose sum (matmul_split_sum) adds it.
const BIAS: bool = {{BIAS}};

// Column n's f32 sum plus its bias, where the product has one.
fn biased(v: f32, n: u32) -> f32 {
  if (BIAS) { return v + f32(bias[p.bias_offset + n]); }
  return v;
}

// Columns n .. n + 3 (all inside N) plus their biases.
fn biased4(v: vec4<f32>, n: u32) -> vec4<f32> {
  if (BIAS) {
    let o = p.bias_offset + n;
    return v + vec4<f32>(f32(bias[o]), f32(bias[o + 1u]), f32(bias[o + 2u]), f32(bias[o + 3u]));
  }
  return v;
}
