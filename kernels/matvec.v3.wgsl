// Matrix-vector product for decoding (M = 1), 16-byte loads: y[b, n] = sum_k x[b, k] * w[b, n, k], w stored
// [N, K] with rows along k. x and w are read in chunks of 16 bytes (CH: vec4<u32> holding 8 f16 values,
// unpacked in pairs, or vec4<f32>); the strides and offsets of Params count chunks. A workgroup is one
// subgroup of SG lanes and owns ROWS rows; per pass every lane loads U chunks of each row (lane + j * SG,
// so neighbouring lanes read neighbouring addresses), which keeps ROWS * U independent 16-byte loads in
// flight per lane: decoding is bound by how many bytes are in flight, not by arithmetic. f32 sums,
// subgroupAdd across the lanes. Rows past N are clamped on load and skipped on store. With G > 1 a
// workgroup holds G subgroups (invocations SG s .. SG s + SG - 1 taken as subgroup s, which the search's
// check confirms on the device), each with its own ROWS rows: GPUs cap the workgroups resident per core,
// so one-subgroup workgroups would leave part of a core's threads unused.
// Bindings: 0 Params (uniform); 1 x: array<CH> read; 2 w: array<CH> read; 3 y: array<T> read_write;
// 4 bias: array<T> read (include/matmul_bias.wgsl, bias_offset in elements); 5 addend: array<T> read (include/matmul_addend.wgsl).
// Workgroup SG G threads; grid (groups of G ROWS rows, folded into x and y; batch).
enable subgroups;
alias T = f32;
alias CH = {{CH}};

//! params from matvec
//! bindings
//!   x: array<CH> read
//!   w: array<CH> read
//!   y: array<T> read_write
//!   bias: array<T> read
//!   addend: array<T> read

{{include matvec_chunks}}

{{include batch_bases}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(SG * G)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(local_invocation_index) li: u32) {
  // No early return past N: subgroupAdd needs uniform control flow, and n0 varies with the subgroup.
  let n0 = ((wid.x + wid.y * nwg.x) * G + li / SG) * ROWS;
  let bases = batch_bases(wid.z, vec2<u32>(p.x_offset, p.w_offset), p.x_batch_strides, p.w_batch_strides);
  let x_base = bases.x;
  var rows: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) { rows[r] = bases.y + min(n0 + r, p.N - 1u) * p.w_row; }
  var sums: array<f32, ROWS>;
  for (var c0 = 0u; c0 < p.K; c0 += SG * U) {
    for (var j = 0u; j < U; j++) {
      let c = c0 + lane + j * SG;
      if (c < p.K) {
        let xc = x[x_base + c];
        for (var r = 0u; r < ROWS; r++) { sums[r] += chunk_dot(xc, w[rows[r] + c]); }
      }
    }
  }
  for (var r = 0u; r < ROWS; r++) {
    let total = subgroupAdd(sums[r]);
    if (lane == 0u && n0 + r < p.N) { y[wid.z * p.N + n0 + r] = T(epilogue(total, n0 + r, wid.z * p.N + n0 + r)); }
  }
}
