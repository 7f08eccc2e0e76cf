// Reductions over the middle axis of a contiguous [outer, n, inner] tensor: the element of x where the
// k = 0 term of output o = outer_i inner + inner_i lies (term k is k inner further on).
fn middle_axis_base(o: u32) -> u32 {
  let inner = max(p.inner, 1u);
  return (o / inner) * p.n * p.inner + o % inner;
}
