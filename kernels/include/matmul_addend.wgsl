/// Shared by the matmul and matrix-vector kernels, after matmul_bias: torch.addmm's epilogue with beta = 1
/// (cuBLAS's gemm accumulating into c): c[i] = T(addend[i] + alpha (sum + bias[n])), the addend widened to
/// f32 and alpha applied in f32, rounded once. The addend has c's shape and layout (contiguous, from
/// element addend_offset), so it is read at c's own index i. ADD (a define) is false for a product without
/// one (the binding is then another read-only buffer, never read) and for the f32 slices of a product split
/// along k, whose sum (matmul_split_sum) adds it.
const ADD: bool = {{ADD}};

// Element i of c (column n) from its f32 sum: the bias, then alpha and the addend where the product has one.
fn epilogue(v: f32, n: u32, i: u32) -> f32 {
  let s = biased(v, n);
  if (ADD) { return f32(addend[p.addend_offset + i]) + p.alpha * s; }
  return s;
}

// Elements i .. i + 3 of c (columns n .. n + 3, all inside N) from their f32 sums.
fn epilogue4(v: vec4<f32>, n: u32, i: u32) -> vec4<f32> {
  let s = biased4(v, n);
  if (ADD) {
    let o = p.addend_offset + i;
    return vec4<f32>(f32(addend[o]), f32(addend[o + 1u]), f32(addend[o + 2u]), f32(addend[o + 3u])) + p.alpha * s;
  }
  return s;
}
