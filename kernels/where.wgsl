// Elementwise select with broadcasting: out[i] = cond[at_c(i)] != 0 ? a[at_a(i)] : b[at_b(i)].
// Bindings: 0 Params (uniform); 1 cond: array<TC> read; 2 a: array<T> read; 3 b: array<T> read;
// 4 out: array<T> read_write. Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
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

{{include elementwise}}
{{include strided}}

// cond as torch's bool(): nonzero is true, NaN included, -0 not. By the bits of the value as f32
// (exact for 0 and NaN in every TC), since compilers may fold NaN != 0 to false.
fn is_true(c: TC) -> bool {
  return (bitcast<u32>(f32(c)) & 0x7fffffffu) != 0u;
}

fn view_strides(d: i32) -> vec3<u32> {
  return vec3<u32>(p.c_strides[d / 4][d % 4], p.a_strides[d / 4][d % 4], p.b_strides[d / 4][d % 4]);
}

fn element(i: u32) {
  let off = strided_offsets(i, vec3<u32>(p.c_offset, p.a_offset, p.b_offset));
  out[i] = select(b[off.z], a[off.y], is_true(cond[off.x]));
}
