// Elementwise unary: y[i] = f(x[at(i)], c) where at(i) walks x's strides (any view), y contiguous.
// f is the define EXPR over v (the element as f32) and c (a uniform constant); computed in f32.
// Bindings: 0 Params (uniform); 1 x: array<TX> read; 2 y: array<TY> read_write.
// Workgroup: 256 threads in a grid-stride loop (include/elementwise.wgsl).
alias TX = f32;
alias TY = f32;

//! params
//!   numel: u32
//!   rank: u32
//!   x_offset: u32
//!   c: f32
//!   shape: array<vec4<u32>, 2>
//!   x_strides: array<vec4<u32>, 2>
//! bindings
//!   x: array<TX> read
//!   y: array<TY> read_write

// Not const-evaluated, so NaN and infinities are allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

// v^c as IEEE pow (and torch.pow) gives it: 1 when c is 0 (0^0 and NaN^0 too), NaN for a finite
// negative base and a fractional exponent, +-inf for a zero base and a negative exponent, the base's
// sign (-0 and -inf included) kept for an odd integer exponent. WGSL's pow is exp2(c log2(v)),
// defined for v > 0 only, so zero and infinite bases are handled here (by bits).
fn signed_pow(v: f32, c: f32) -> f32 {
  if (c == 0.0) { return 1.0; }
  let a = bitcast<u32>(v) & 0x7fffffffu;
  if (v < 0.0 && a < 0x7f800000u && c != floor(c)) { return f32_from_bits(0x7fc00000u); }
  var r = pow(abs(v), c);
  if (a == 0u) { r = select(0.0, f32_from_bits(0x7f800000u), c < 0.0); }
  if (a == 0x7f800000u) { r = select(0.0, f32_from_bits(0x7f800000u), c > 0.0); }
  if ((bitcast<u32>(v) >> 31u) == 1u && abs(c % 2.0) == 1.0) { return -r; }
  return r;
}

// max(v, 0) as torch.relu gives it: NaN and -0 pass through (only v < 0 becomes 0). By bits, since
// compilers may fold comparisons assuming no NaN.
fn relu_of(v: f32) -> f32 {
  let bits = bitcast<u32>(v);
  if (bits > 0x80000000u && bits <= 0xff800000u) { return 0.0; }
  return v;
}

// v truncated toward zero for a cast to i32, as torch gives it on x86: NaN, infinities and values
// outside [-2^31, 2^31) become -2^31 (INT_MIN). Checked by bits, since compilers may fold NaN tests.
fn trunc_i32(v: f32) -> f32 {
  if ((bitcast<u32>(v) & 0x7fffffffu) >= 0x4f000000u) { return -2147483648.0; }
  return trunc(v);
}

fn f(v: f32, c: f32) -> f32 {
  return {{EXPR}};
}

{{include elementwise}}
{{include strided}}

fn view_strides(d: i32) -> vec3<u32> {
  return vec3<u32>(p.x_strides[d / 4][d % 4], p.x_strides[d / 4][d % 4], p.x_strides[d / 4][d % 4]);
}

fn element(i: u32) {
  let off = strided_offsets(i, vec3<u32>(p.x_offset)).x;
  y[i] = TY(f(f32(x[off]), p.c));
}
