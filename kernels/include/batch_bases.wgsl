// Element offsets of two operands at batch index z: z's coordinates in p.batch_shape (p.batch_rank
// dimensions, at most 4) dotted with each operand's batch strides (0 on broadcast dimensions).
fn batch_bases(z: u32, base: vec2<u32>, strides0: vec4<u32>, strides1: vec4<u32>) -> vec2<u32> {
  var rem = z;
  var off = base;
  for (var d = i32(p.batch_rank) - 1; d >= 0; d--) {
    let s = p.batch_shape[d];
    let coord = rem % s;
    off += coord * vec2<u32>(strides0[d], strides1[d]);
    rem = rem / s;
  }
  return off;
}
