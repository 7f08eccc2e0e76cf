// RMSNorm weight gradient: dw[c] = sum_r dy[r, c] * T(x[r, c] * rstd[r]) over contiguous [rows, C]
// tensors, summed in row order (deterministic, no atomics).
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 dy: array<T> read; 3 rstd: array<f32> read ([rows]);
// 4 dw: array<T> read_write ([C]).
// Workgroup: 64 threads, one column each (adjacent threads read adjacent columns); ceil(C/64) workgroups.
alias T = f32;

//! params
//!   rows: u32
//!   C: u32
//! bindings
//!   x: array<T> read
//!   dy: array<T> read
//!   rstd: array<f32> read
//!   dw: array<T> read_write
const T_IS_F16: bool = {{T_IS_F16}};

{{include round_to_t}}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = gid.x + gid.y * nwg.x * 64u;
  if (c >= p.C) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let i = r * p.C + c;
    acc += f32(dy[i]) * round_to_t(f32(x[i]) * rstd[r]);
  }
  dw[c] = T(acc);
}
