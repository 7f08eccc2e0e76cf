// Elementwise binary with broadcasting: out[i] = f(a[at_a(i)], b[at_b(i)]); a and b are read
// through strides (0 on broadcast dimensions), out is contiguous. f is the define EXPR over a, b (f32).
// Bindings: 0 Params (uniform); 1 a: array<T> read; 2 b: array<T> read; 3 out: array<T> read_write.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias T = f32;

//! params
//!   numel: u32
//!   rank: u32
//!   a_offset: u32
//!   b_offset: u32
//!   shape: array<vec4<u32>, 2>
//!   a_strides: array<vec4<u32>, 2>
//!   b_strides: array<vec4<u32>, 2>
//! bindings
//!   a: array<T> read
//!   b: array<T> read
//!   out: array<T> read_write

// Not const-evaluated, so NaN and infinities are allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

// relu's gradient a where x = b is neither <= 0 nor -0 (NaN passes a, as torch's threshold_backward
// does), else 0. By bits, since compilers may fold comparisons assuming no NaN.
fn relu_grad(a: f32, b: f32) -> f32 {
  let bits = bitcast<u32>(b);
  if (bits == 0u || (bits >= 0x80000000u && bits <= 0xff800000u)) { return 0.0; }
  return a;
}

fn f(a: f32, b: f32) -> f32 {
  return {{EXPR}};
}

{{include elementwise}}
{{include strided}}

fn view_strides(d: i32) -> vec3<u32> {
  return vec3<u32>(p.a_strides[d / 4][d % 4], p.b_strides[d / 4][d % 4], p.b_strides[d / 4][d % 4]);
}

fn element(i: u32) {
  let off = strided_offsets(i, vec3<u32>(p.a_offset, p.b_offset, p.b_offset));
  out[i] = T(f(f32(a[off.x]), f32(b[off.y])));
}
