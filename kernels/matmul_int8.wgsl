// Dequantizing matmul with an int8 weight (one absmax per weight row): c[m, n] = sum_k a[m, k] * Wt(k, n),
// f32 accumulation. W [R, C] is row-major int8 codes, 4 per u32 (byte j of word i is element 4i + j, two's
// complement), with W[r, col] = code * absmax[r] / 127; unpack4x8snorm gives code / 127. Codes are
// dequantized in registers as they are read: no dequantized copy of W exists.
// WT = true (forward, x @ W^T): Wt(k, n) = W[n, k], K = C, N = R, the row scale applied to the outputs.
// WT = false (the gradient to the input, dY @ W): Wt(k, n) = W[k, n], K = R, N = C.
// Tiling as matmul.v3: one subgroup per workgroup, each lane owns a vec4 of c columns over TM rows, rows of a
// shared through subgroupBroadcast (the SHARE step, unrolled on the host). a contiguous [M, K]; c contiguous
// [M, N]; R and C multiples of 4. Edge rows and columns are clamped on load and skipped on store.
// Grid (ceil(N / (4 SG)), ceil(M / TM)).
enable subgroups;
alias T = f32;

const SG: u32 = {{SG}}u;
const TM: u32 = {{TM}}u;
const WT: bool = {{WT}};

//! params
//!   M: u32
//!   N: u32
//!   K: u32
//!   C4: u32             // words per weight row (C / 4)
//! bindings
//!   a: array<vec4<T>> read
//!   codes: array<u32> read
//!   absmax: array<f32> read
//!   c: array<vec4<T>> read_write

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
  for (var k4 = 0u; k4 < K4; k4++) {
    var b0: vec4<f32>;
    var b1: vec4<f32>;
    var b2: vec4<f32>;
    var b3: vec4<f32>;
    if (WT) {
      // Four weight rows (outputs), four codes along k each; transposed into rows of Wt.
      let base = nl * 4u * p.C4 + k4;
      let t0 = unpack4x8snorm(codes[base]);
      let t1 = unpack4x8snorm(codes[base + p.C4]);
      let t2 = unpack4x8snorm(codes[base + 2u * p.C4]);
      let t3 = unpack4x8snorm(codes[base + 3u * p.C4]);
      b0 = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
      b1 = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
      b2 = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
      b3 = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
    } else {
      let r = k4 * 4u;
      let base = r * p.C4 + nl;
      b0 = unpack4x8snorm(codes[base]) * absmax[r];
      b1 = unpack4x8snorm(codes[base + p.C4]) * absmax[r + 1u];
      b2 = unpack4x8snorm(codes[base + 2u * p.C4]) * absmax[r + 2u];
      b3 = unpack4x8snorm(codes[base + 3u * p.C4]) * absmax[r + 3u];
    }
{{SHARE}}
  }
  if (n4 < N4) {
    var s = vec4<f32>(1.0);
    if (WT) {
      s = vec4<f32>(absmax[4u * n4], absmax[4u * n4 + 1u], absmax[4u * n4 + 2u], absmax[4u * n4 + 3u]);
    }
    for (var r = 0u; r < TM; r++) {
      let row = m0 + r;
      if (row < p.M) {
        c[row * N4 + n4] = vec4<T>(acc[r] * s);
      }
    }
  }
}
