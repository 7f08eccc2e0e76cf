// Dequantizing matmul with an NF4 weight (QLoRA): c[m, n] = sum_k a[m, k] * Wt(k, n), f32 accumulation.
// W [R, C] is the row-major byte stream of bitsandbytes (two codes per byte, the even element in the high
// nibble), read as u32 words (little-endian: element e is in word e / 8). Element e = NF4[code] * absmax[e / 64],
// the absmaxes of this product decoded from their double quantization by nf4_absmax first (one f32 per 64
// values, 1/32 of an f16 copy). Codes are dequantized in registers as they are read: no dequantized copy of W exists.
// WT = true (forward, x @ W^T): Wt(k, n) = W[n, k], K = C, N = R; each lane keeps the absmax of its four
// rows and reloads it where a block starts. WT = false (the gradient to the input, dY @ W): Wt(k, n) =
// W[k, n], K = R, N = C. The entry point and tiling are include/matmul_dequant.wgsl's; R and C multiples
// of 4 (then every group of 4 elements is half a word).
enable subgroups;
alias T = f32;

//! params
//!   M: u32
//!   N: u32
//!   K: u32
//!   C: u32              // values per weight row
//!   bias_offset: u32
//! bindings
//!   a: array<vec4<T>> read
//!   codes: array<u32> read
//!   absmax: array<f32> read
//!   c: array<vec4<T>> read_write
//!   bias: array<T> read

{{include nf4_values}}

var<private> NF4: array<f32, 16> = NF4_VALUES;

/** Code values of elements e .. e + 3 (e a multiple of 4): two bytes, high nibble first in each. */
fn nf4x4(e: u32) -> vec4<f32> {
  let bits = (codes[e / 8u] >> ((e & 4u) * 4u)) & 0xffffu;
  return vec4<f32>(NF4[(bits >> 4u) & 15u], NF4[bits & 15u], NF4[(bits >> 12u) & 15u], NF4[(bits >> 8u) & 15u]);
}

{{include matmul_dequant}}

// WT: the absmaxes of this lane's four weight rows at the current k, reloaded where a block starts.
var<private> am: vec4<f32>;

fn wt_rows(k4: u32, nl: u32) -> mat4x4<f32> {
  if (WT) {
    let e = nl * 4u * p.C + k4 * 4u;
    if (k4 == 0u || (e & 63u) == 0u) { am.x = absmax[e / 64u]; }
    if (k4 == 0u || ((e + p.C) & 63u) == 0u) { am.y = absmax[(e + p.C) / 64u]; }
    if (k4 == 0u || ((e + 2u * p.C) & 63u) == 0u) { am.z = absmax[(e + 2u * p.C) / 64u]; }
    if (k4 == 0u || ((e + 3u * p.C) & 63u) == 0u) { am.w = absmax[(e + 3u * p.C) / 64u]; }
    return transpose(mat4x4<f32>(nf4x4(e) * am.x, nf4x4(e + p.C) * am.y, nf4x4(e + 2u * p.C) * am.z, nf4x4(e + 3u * p.C) * am.w));
  }
  let e = k4 * 4u * p.C + nl * 4u;
  return mat4x4<f32>(
    nf4x4(e) * absmax[e / 64u],
    nf4x4(e + p.C) * absmax[(e + p.C) / 64u],
    nf4x4(e + 2u * p.C) * absmax[(e + 2u * p.C) / 64u],
    nf4x4(e + 3u * p.C) * absmax[(e + 3u * p.C) / 64u],
  );
}

// The absmaxes are applied as the codes are read.
fn out_scale(n4: u32) -> vec4<f32> {
  return vec4<f32>(1.0);
}
