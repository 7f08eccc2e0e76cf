// Element i of the row-major shape p.shape (p.rank dimensions, at most 8) read through up to three
// strided views: the offset of each view is its base plus i's coordinates dotted with its strides
// (0 on broadcast dimensions). Kernels with fewer views repeat one and read only the lanes they need.
alias Strides = array<vec4<u32>, 2>;

fn strided_offsets(i: u32, strides: array<Strides, 3>, base: vec3<u32>) -> vec3<u32> {
  var rem = i;
  var off = base;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let s = p.shape[d / 4][d % 4];
    let coord = rem % s;
    off += coord * vec3<u32>(strides[0][d / 4][d % 4], strides[1][d / 4][d % 4], strides[2][d / 4][d % 4]);
    rem = rem / s;
  }
  return off;
}
