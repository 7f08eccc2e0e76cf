// Strided copy: dst[at_dst(i)] = src[at_src(i)] for every index i of `shape`; both operands are
// views with their own offsets and strides (used by cat, slice backward and other scatters into views).
// Bindings: 0 Params (uniform); 1 src: array<T> read; 2 dst: array<T> read_write.
// Workgroup: 256 threads, one element each; 2-D grid beyond 65535 workgroups.
alias T = f32;

//! params
//!   numel: u32
//!   rank: u32
//!   src_offset: u32
//!   dst_offset: u32
//!   shape: array<vec4<u32>, 2>
//!   src_strides: array<vec4<u32>, 2>
//!   dst_strides: array<vec4<u32>, 2>
//! bindings
//!   src: array<T> read
//!   dst: array<T> read_write

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.numel) { return; }
  var rem = i;
  var os = p.src_offset;
  var od = p.dst_offset;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let s = p.shape[d / 4][d % 4];
    let coord = rem % s;
    os += coord * p.src_strides[d / 4][d % 4];
    od += coord * p.dst_strides[d / 4][d % 4];
    rem = rem / s;
  }
  dst[od] = src[os];
}
