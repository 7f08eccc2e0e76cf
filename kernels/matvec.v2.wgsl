// Matrix-vector product for decoding (M = 1), lanes along k: y[b, n] = sum_k x[b, k] * w[b, n, k], w stored
// [N, K] with rows along k (a linear layer's weight; K a multiple of 4). A workgroup is one subgroup of SG
// lanes (the adapter's fixed subgroup size) and owns 4 outputs: lane l reads vec4s l, l + SG, ... of each
// of the 4 rows, so neighbouring lanes read neighbouring addresses (coalesced on a GPU), accumulates in f32,
// and subgroupAdd sums the lanes. Rows past N are clamped on load and skipped on store.
// Bindings: 0 Params (uniform, strides in vec4 units); 1 x: array<vec4<T>> read; 2 w: array<vec4<T>> read;
// 3 y: array<T> read_write; 4 bias: array<T> read (include/matmul_bias.wgsl, bias_offset in elements); 5 addend: array<T> read (include/matmul_addend.wgsl). Workgroup SG threads; grid (groups of 4 rows, folded into x and y; batch).
enable subgroups;
alias T = f32;

//! params from matvec
//! bindings
//!   x: array<vec4<T>> read
//!   w: array<vec4<T>> read
//!   y: array<T> read_write
//!   bias: array<T> read
//!   addend: array<T> read

const SG: u32 = {{SG}}u;

{{include batch_bases}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = (wid.x + wid.y * nwg.x) * 4u;
  if (n0 >= p.N) { return; }
  let K4 = p.K / 4u;
  let bases = batch_bases(wid.z, vec2<u32>(p.x_offset, p.w_offset), p.x_batch_strides, p.w_batch_strides);
  var x_base = bases.x;
  var w_base = bases.y;
  let r0 = w_base + n0 * p.w_row;
  let r1 = w_base + min(n0 + 1u, p.N - 1u) * p.w_row;
  let r2 = w_base + min(n0 + 2u, p.N - 1u) * p.w_row;
  let r3 = w_base + min(n0 + 3u, p.N - 1u) * p.w_row;
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var s3 = vec4<f32>(0.0);
  for (var k4 = lane; k4 < K4; k4 += SG) {
    let xv = vec4<f32>(x[x_base + k4]);
    s0 = fma(xv, vec4<f32>(w[r0 + k4]), s0);
    s1 = fma(xv, vec4<f32>(w[r1 + k4]), s1);
    s2 = fma(xv, vec4<f32>(w[r2 + k4]), s2);
    s3 = fma(xv, vec4<f32>(w[r3 + k4]), s3);
  }
  let one = vec4<f32>(1.0);
  let total = subgroupAdd(vec4<f32>(dot(s0, one), dot(s1, one), dot(s2, one), dot(s3, one)));
  if (lane == 0u) {
    let base = wid.z * p.N + n0;
    for (var i = 0u; i < 4u; i++) {
      if (n0 + i < p.N) { y[base + i] = T(epilogue(total[i], n0 + i, base + i)); }
    }
  }
}
