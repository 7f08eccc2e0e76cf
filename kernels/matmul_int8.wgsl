// Dequantizing matmul with an int8 weight (one absmax per weight row): c[m, n] = sum_k a[m, k] * Wt(k, n),
// f32 accumulation. W [R, C] is row-major int8 codes, 4 per u32 (byte j of word i is element 4i + j, two's
// complement), with W[r, col] = code * absmax[r] / 127; unpack4x8snorm gives code / 127. Codes are
// dequantized in registers as they are read: no dequantized copy of W exists.
// WT = true (forward, x @ W^T): Wt(k, n) = W[n, k], K = C, N = R, the row scale applied to the outputs.
// WT = false (the gradient to the input, dY @ W): Wt(k, n) = W[k, n], K = R, N = C.
// The entry point and tiling are include/matmul_dequant.wgsl's; R and C multiples of 4.
enable subgroups;
alias T = f32;

//! params
//!   M: u32
//!   N: u32
//!   K: u32
//!   C4: u32             // words per weight row (C / 4)
//!   bias_offset: u32
//! bindings
//!   a: array<vec4<T>> read
//!   codes: array<u32> read
//!   absmax: array<f32> read
//!   c: array<vec4<T>> read_write
//!   bias: array<T> read

{{include matmul_dequant}}

fn wt_rows(k4: u32, nl: u32) -> mat4x4<f32> {
  if (WT) {
    // Four weight rows (outputs), four codes along k each; transposed into rows of Wt.
    let base = nl * 4u * p.C4 + k4;
    return transpose(mat4x4<f32>(
      unpack4x8snorm(codes[base]),
      unpack4x8snorm(codes[base + p.C4]),
      unpack4x8snorm(codes[base + 2u * p.C4]),
      unpack4x8snorm(codes[base + 3u * p.C4]),
    ));
  }
  let r = k4 * 4u;
  let base = r * p.C4 + nl;
  return mat4x4<f32>(
    unpack4x8snorm(codes[base]) * absmax[r],
    unpack4x8snorm(codes[base + p.C4]) * absmax[r + 1u],
    unpack4x8snorm(codes[base + 2u * p.C4]) * absmax[r + 2u],
    unpack4x8snorm(codes[base + 3u * p.C4]) * absmax[r + 3u],
  );
}

// WT: the row scales of the four outputs, applied once to the accumulated sums.
fn out_scale(n4: u32) -> vec4<f32> {
  if (WT) {
    return vec4<f32>(absmax[4u * n4], absmax[4u * n4 + 1u], absmax[4u * n4 + 2u], absmax[4u * n4 + 3u]);
  }
  return vec4<f32>(1.0);
}
