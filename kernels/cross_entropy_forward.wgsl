// Cross-entropy forward, one row of contiguous logits [N, V] per workgroup, without materialising
// softmax: lse[n] = m + log(sum_v exp(x[n, v] - m)), m = max_v x[n, v];
// loss[n] = lse[n] - x[n, t] for t = targets[n], 0 where t == ignore_index; valid[n] = 1 or 0.
// A target outside [0, V) that is not ignore_index gives NaN (host targets are checked before dispatch).
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 targets: array<i32> read ([N]);
// 3 loss: array<f32> read_write ([N]); 4 lse: array<f32> read_write ([N]); 5 valid: array<f32> read_write ([N]).
// Workgroup: 64 threads per row, strided over V in one pass (online max and sum of exp,
// include/row_softmax_stats.wgsl); one workgroup per row, 2-D grid beyond 65535 rows. Computes in f32.
alias T = f32;

//! params
//!   N: u32
//!   V: u32
//!   ignore_index: i32
//! bindings
//!   x: array<T> read
//!   targets: array<i32> read
//!   loss: array<f32> read_write
//!   lse: array<f32> read_write
//!   valid: array<f32> read_write

const WG: u32 = 64u;

{{include row_softmax_stats}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; }
  let base = row * p.V;
  let st = row_softmax_stats(base, p.V, lid);
  if (lid == 0u) {
    let l = st.m + log(st.s);
    lse[row] = l;
    let t = targets[row];
    if (t == p.ignore_index) {
      loss[row] = 0.0;
      valid[row] = 0.0;
    } else if (t < 0 || u32(t) >= p.V) {
      loss[row] = f32_from_bits(0x7fc00000u);
      valid[row] = 1.0;
    } else {
      loss[row] = l - f32(x[base + u32(t)]);
      valid[row] = 1.0;
    }
  }
}
