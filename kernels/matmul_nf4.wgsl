// Dequantizing matmul with an NF4 weight (QLoRA): c[m, n] = sum_k a[m, k] * Wt(k, n), f32 accumulation.
// W [R, C] is the row-major byte stream of bitsandbytes (two codes per byte, the even element in the high
// nibble), read as u32 words (little-endian: element e is in word e / 8). Element e = NF4[code] * absmax[e / 64],
// the absmaxes of this product decoded from their double quantization by nf4_absmax first (one f32 per 64
// values, 1/32 of an f16 copy). Codes are dequantized in registers as they are read: no dequantized copy of W exists.
// WT = true (forward, x @ W^T): Wt(k, n) = W[n, k], K = C, N = R; each lane keeps the absmax of its four
// rows and reloads it where a block starts. WT = false (the gradient to the input, dY @ W): Wt(k, n) =
// W[k, n], K = R, N = C. Tiling as matmul.v3 (one subgroup per workgroup, a lane owns a vec4 of c columns over
// TM rows, rows of a shared by the SHARE step). a contiguous [M, K], c contiguous [M, N]; R and C multiples
// of 4 (then every group of 4 elements is half a word). Grid (ceil(N / (4 SG)), ceil(M / TM)).
enable subgroups;
alias T = f32;

const SG: u32 = {{SG}}u;
const TM: u32 = {{TM}}u;
const WT: bool = {{WT}};

//! params
//!   M: u32
//!   N: u32
//!   K: u32
//!   C: u32              // values per weight row
//! bindings
//!   a: array<vec4<T>> read
//!   codes: array<u32> read
//!   absmax: array<f32> read
//!   c: array<vec4<T>> read_write

var<private> NF4: array<f32, 16> = array<f32, 16>(
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
);

/** Code values of elements e .. e + 3 (e a multiple of 4): two bytes, high nibble first in each. */
fn nf4x4(e: u32) -> vec4<f32> {
  let bits = (codes[e / 8u] >> ((e & 4u) * 4u)) & 0xffffu;
  return vec4<f32>(NF4[(bits >> 4u) & 15u], NF4[bits & 15u], NF4[(bits >> 12u) & 15u], NF4[(bits >> 8u) & 15u]);
}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let N4 = p.N / 4u;
  let K4 = p.K / 4u;
  let n4 = wid.x * SG + lane;
  let nl = min(n4, N4 - 1u);
  let m0 = wid.y * TM;
  var a_rows: array<u32, TM / SG>;
  for (var i = 0u; i < TM / SG; i++) {
    a_rows[i] = min(m0 + i * SG + lane, p.M - 1u) * K4;
  }
  var acc: array<vec4<f32>, TM>;
  // WT: the first element of this lane's four weight rows, and their current absmaxes.
  let e0 = nl * 4u * p.C;
  var am = vec4<f32>(0.0);
  for (var k4 = 0u; k4 < K4; k4++) {
    var b0: vec4<f32>;
    var b1: vec4<f32>;
    var b2: vec4<f32>;
    var b3: vec4<f32>;
    if (WT) {
      let e = e0 + k4 * 4u;
      if (k4 == 0u || (e & 63u) == 0u) { am.x = absmax[e / 64u]; }
      if (k4 == 0u || ((e + p.C) & 63u) == 0u) { am.y = absmax[(e + p.C) / 64u]; }
      if (k4 == 0u || ((e + 2u * p.C) & 63u) == 0u) { am.z = absmax[(e + 2u * p.C) / 64u]; }
      if (k4 == 0u || ((e + 3u * p.C) & 63u) == 0u) { am.w = absmax[(e + 3u * p.C) / 64u]; }
      let t0 = nf4x4(e) * am.x;
      let t1 = nf4x4(e + p.C) * am.y;
      let t2 = nf4x4(e + 2u * p.C) * am.z;
      let t3 = nf4x4(e + 3u * p.C) * am.w;
      b0 = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
      b1 = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
      b2 = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
      b3 = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
    } else {
      let e = k4 * 4u * p.C + nl * 4u;
      b0 = nf4x4(e) * absmax[e / 64u];
      b1 = nf4x4(e + p.C) * absmax[(e + p.C) / 64u];
      b2 = nf4x4(e + 2u * p.C) * absmax[(e + 2u * p.C) / 64u];
      b3 = nf4x4(e + 3u * p.C) * absmax[(e + 3u * p.C) / 64u];
    }
{{SHARE}}
  }
  if (n4 < N4) {
    for (var r = 0u; r < TM; r++) {
      let row = m0 + r;
      if (row < p.M) {
        c[row * N4 + n4] = vec4<T>(acc[r]);
      }
    }
  }
}
