// Strided copy: dst[at_dst(i)] = src[at_src(i)] for every index i of `shape`; both operands are
// views with their own offsets and strides (used by cat, slice backward and other scatters into views).
// Bindings: 0 Params (uniform); 1 src: array<T> read; 2 dst: array<T> read_write.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
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

{{include elementwise}}
{{include strided}}

fn view_strides(d: i32) -> vec3<u32> {
  return vec3<u32>(p.src_strides[d / 4][d % 4], p.dst_strides[d / 4][d % 4], p.dst_strides[d / 4][d % 4]);
}

fn element(i: u32) {
  let off = strided_offsets(i, vec3<u32>(p.src_offset, p.dst_offset, p.dst_offset));
  dst[off.y] = src[off.x];
}
