// Elementwise binary with broadcasting: out[i] = f(a[at_a(i)], b[at_b(i)]); a and b are read
// through strides (0 on broadcast dimensions), out is contiguous. f is the define EXPR over a, b (f32).
// Bindings: 0 Params (uniform); 1 a: array<T> read; 2 b: array<T> read; 3 out: array<T> read_write.
// Workgroup: 256 threads, one element each; 2-D grid beyond 65535 workgroups.
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

fn f(a: f32, b: f32) -> f32 {
  return {{EXPR}};
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.numel) { return; }
  var rem = i;
  var oa = p.a_offset;
  var ob = p.b_offset;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let s = p.shape[d / 4][d % 4];
    let coord = rem % s;
    oa += coord * p.a_strides[d / 4][d % 4];
    ob += coord * p.b_strides[d / 4][d % 4];
    rem = rem / s;
  }
  out[i] = T(f(f32(a[oa]), f32(b[ob])));
}
