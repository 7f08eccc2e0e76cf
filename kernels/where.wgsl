// Elementwise select with broadcasting: out[i] = cond[at_c(i)] != 0 ? a[at_a(i)] : b[at_b(i)].
// Bindings: 0 Params (uniform); 1 cond: array<TC> read; 2 a: array<T> read; 3 b: array<T> read;
// 4 out: array<T> read_write. Workgroup: 256 threads, one element each; 2-D grid beyond 65535 workgroups.
alias T = f32;
alias TC = u32;

//! params
//!   numel: u32
//!   rank: u32
//!   c_offset: u32
//!   a_offset: u32
//!   b_offset: u32
//!   shape: array<vec4<u32>, 2>
//!   c_strides: array<vec4<u32>, 2>
//!   a_strides: array<vec4<u32>, 2>
//!   b_strides: array<vec4<u32>, 2>
//! bindings
//!   cond: array<TC> read
//!   a: array<T> read
//!   b: array<T> read
//!   out: array<T> read_write

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.numel) { return; }
  var rem = i;
  var oc = p.c_offset;
  var oa = p.a_offset;
  var ob = p.b_offset;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let s = p.shape[d / 4][d % 4];
    let coord = rem % s;
    oc += coord * p.c_strides[d / 4][d % 4];
    oa += coord * p.a_strides[d / 4][d % 4];
    ob += coord * p.b_strides[d / 4][d % 4];
    rem = rem / s;
  }
  out[i] = select(b[ob], a[oa], cond[oc] != TC(0));
}
