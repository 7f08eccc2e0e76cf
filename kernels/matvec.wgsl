// Matrix-vector product for decoding (M = 1), memory bound: y[b, n] = sum_k x[b, k] * w[b, k, n].
// BT = false: w rows along n ([K, N], N a multiple of 4); each thread owns a vec4 of y and streams
// its column panel of w one vec4 per k, so a workgroup reads contiguous runs of each row.
// BT = true: w stored transposed ([N, K] rows along k, K a multiple of 4, the layout of a linear
// layer's weight); each thread owns 4 outputs and streams 4 rows of w as vec4s along k.
// Both accumulate in f32 over 4 independent k steps per iteration. x is contiguous along k.
// Bindings: 0 Params (uniform, strides in vec4 units); 1 x: array<vec4<T>> read;
// 2 w: array<vec4<T>> read; 3 y: array<vec4<T>> read_write; 4 bias: array<T> read
// (include/matmul_bias.wgsl, bias_offset in elements); 5 addend: array<T> read (include/matmul_addend.wgsl,
// addend_offset in elements). Workgroup WG threads;
// grid (ceil(N / (4 WG)), 1, batch).
alias T = f32;

//! params from matvec
//! bindings
//!   x: array<vec4<T>> read
//!   w: array<vec4<T>> read
//!   y: array<vec4<T>> read_write
//!   bias: array<T> read
//!   addend: array<T> read

const WG: u32 = {{WG}}u;
const BT: bool = {{BT}};

{{include batch_bases}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let N4 = p.N / 4u;
  let K4 = p.K / 4u;
  let n4 = wid.x * WG + li;
  if (n4 >= N4) { return; }
  let bases = batch_bases(wid.z, vec2<u32>(p.x_offset, p.w_offset), p.x_batch_strides, p.w_batch_strides);
  var x_base = bases.x;
  var w_base = bases.y;
  var acc = vec4<f32>(0.0);
  // BT: s_i sums output 4 n4 + i at four k positions; else s_i sums the terms of k = 4 k4 + i.
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var s3 = vec4<f32>(0.0);
  if (BT) {
    let r0 = w_base + n4 * 4u * p.w_row;
    for (var k4 = 0u; k4 < K4; k4++) {
      let xv = vec4<f32>(x[x_base + k4]);
      s0 = fma(xv, vec4<f32>(w[r0 + k4]), s0);
      s1 = fma(xv, vec4<f32>(w[r0 + p.w_row + k4]), s1);
      s2 = fma(xv, vec4<f32>(w[r0 + 2u * p.w_row + k4]), s2);
      s3 = fma(xv, vec4<f32>(w[r0 + 3u * p.w_row + k4]), s3);
    }
    let one = vec4<f32>(1.0);
    acc = vec4<f32>(dot(s0, one), dot(s1, one), dot(s2, one), dot(s3, one));
  } else {
    for (var k4 = 0u; k4 < K4; k4++) {
      let xv = vec4<f32>(x[x_base + k4]);
      let base = w_base + k4 * 4u * p.w_row + n4;
      s0 = fma(vec4<f32>(xv.x), vec4<f32>(w[base]), s0);
      s1 = fma(vec4<f32>(xv.y), vec4<f32>(w[base + p.w_row]), s1);
      s2 = fma(vec4<f32>(xv.z), vec4<f32>(w[base + 2u * p.w_row]), s2);
      s3 = fma(vec4<f32>(xv.w), vec4<f32>(w[base + 3u * p.w_row]), s3);
    }
    acc = (s0 + s1) + (s2 + s3);
  }
  y[wid.z * N4 + n4] = vec4<T>(epilogue4(acc, n4 * 4u, (wid.z * N4 + n4) * 4u));
}
