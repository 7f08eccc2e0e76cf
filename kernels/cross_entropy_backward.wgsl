// Cross-entropy backward from the logits and the saved per-row logsumexp:
// dx[n, v] = (exp(x[n, v] - lse[n]) - (v == t_n)) * g_n, 0 for rows whose target is ignore_index;
// g_n = g[0] / count[0] (mode 0, 'mean'), g[0] (mode 1, 'sum'), g[n] (mode 2, 'none').
// Bindings: 0 Params (uniform); 1 x: array<T> read ([N, V]); 2 targets: array<i32> read ([N]);
// 3 lse: array<f32> read ([N]); 4 g: array<T> read ([1] or [N]); 5 count: array<f32> read ([1]);
// 6 dx: array<T> read_write ([N, V]).
// Workgroup: 256 threads, one element each; 2-D grid beyond 65535 workgroups.
alias T = f32;

//! params
//!   N: u32
//!   V: u32
//!   ignore_index: i32
//!   mode: u32
//! bindings
//!   x: array<T> read
//!   targets: array<i32> read
//!   lse: array<f32> read
//!   g: array<T> read
//!   count: array<f32> read
//!   dx: array<T> read_write

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.N * p.V) { return; }
  let n = i / p.V;
  let v = i % p.V;
  let t = targets[n];
  if (t == p.ignore_index) {
    dx[i] = T(0.0);
    return;
  }
  var gn: f32;
  if (p.mode == 0u) {
    gn = f32(g[0]) / count[0];
  } else if (p.mode == 1u) {
    gn = f32(g[0]);
  } else {
    gn = f32(g[n]);
  }
  let prob = exp(f32(x[i]) - lse[n]);
  let onehot = select(0.0, 1.0, i32(v) == t);
  dx[i] = T((prob - onehot) * gn);
}
