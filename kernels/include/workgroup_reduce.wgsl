// Tree reductions over the WG threads of a workgroup (WG a power of two, a const of the kernel): every
// thread passes its value and gets the workgroup's sum or maximum. All threads must call them.
var<workgroup> wg_partial: array<f32, WG>;

fn workgroup_reduce(lid: u32, v: f32, is_max: bool) -> f32 {
  wg_partial[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let a = wg_partial[lid];
      let b = wg_partial[lid + s];
      wg_partial[lid] = select(a + b, max(a, b), is_max);
    }
    workgroupBarrier();
  }
  let r = wg_partial[0];
  workgroupBarrier();
  return r;
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
  return workgroup_reduce(lid, v, false);
}

fn workgroup_max(lid: u32, v: f32) -> f32 {
  return workgroup_reduce(lid, v, true);
}
