// Element i of the row-major shape p.shape (p.rank dimensions, at most 8) read through up to three
// strided views: the offset of each view is its base plus i's coordinates dotted with its strides
// (0 on broadcast dimensions). The kernel defines view_strides(d), the three views' strides of
// dimension d read from its uniform (kernels with fewer views repeat one and read only the lanes they need).
// Needs i < p.numel: the outermost coordinate is then what remains of i, with no division (integer
// division is slow on CPU adapters, and a contiguous view coalesces to one dimension: none at all).
fn strided_offsets(i: u32, base: vec3<u32>) -> vec3<u32> {
  if (p.rank == 1u) { return base + i * view_strides(0); }
  var rem = i;
  var off = base;
  for (var d = i32(p.rank) - 1; d > 0; d--) {
    let s = p.shape[d / 4][d % 4];
    off += (rem % s) * view_strides(d);
    rem = rem / s;
  }
  return off + rem * view_strides(0);
}
