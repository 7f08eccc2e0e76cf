/// round_to_t(v): v rounded to the element type T and back to f32, in integer arithmetic when T is f16.
// A round trip f32(T(v)) would do, but shader compilers fold it to v (Mesa does), so the f16 rounding
// (to nearest, ties to even; beyond 65504 to infinity; subnormals in steps of 2^-24) is done by hand.
// The kernel declares `const T_IS_F16: bool = {{T_IS_F16}};`.
fn round_f16(v: f32) -> f32 {
  let bits = bitcast<u32>(v);
  let sign = bits & 0x80000000u;
  let a = bits & 0x7fffffffu;
  if (a >= 0x7f800000u) { return v; }
  if (a < 0x38800000u) {
    // below 2^-14: f16 subnormals, multiples of 2^-24 (round() ties to even)
    return round(v * 16777216.0) / 16777216.0;
  }
  // keep 10 of the 23 mantissa bits, ties to even
  let r = (a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u;
  if (r >= 0x47800000u) { return bitcast<f32>(sign | 0x7f800000u); }
  return bitcast<f32>(sign | r);
}

fn round_to_t(v: f32) -> f32 {
  if (T_IS_F16) { return round_f16(v); }
  return v;
}

fn round_to_t2(v: vec2<f32>) -> vec2<f32> {
  return vec2<f32>(round_to_t(v.x), round_to_t(v.y));
}

fn round_to_t4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(round_to_t(v.x), round_to_t(v.y), round_to_t(v.z), round_to_t(v.w));
}
