/// Shared by the fused matrix-vector kernels: the RMS of each row of x (norm_r[m]) when p.norm is set,
/// statements inside main (li the thread's index; the kernel defines x_elem, NORM_WG and the workgroup arrays).
if (p.norm != 0u) {
  for (var m = 0u; m < MR; m++) {
    let base = (p.x_offset + m * p.x_row) * CE;
    for (var v = li; v < NORM_WG; v += SG * G) {
      var s = 0.0;
      for (var c = v; c < p.K * CE; c += NORM_WG) {
        let e = x_elem(base + c);
        s += e * e;
      }
      norm_partial[v] = s;
    }
    workgroupBarrier();
    for (var half = NORM_WG / 2u; half > 0u; half >>= 1u) {
      for (var v = li; v < half; v += SG * G) { norm_partial[v] = norm_partial[v] + norm_partial[v + half]; }
      workgroupBarrier();
    }
    if (li == 0u) { norm_r[m] = inverseSqrt(norm_partial[0] / f32(p.K * CE) + p.eps); }
    workgroupBarrier();
  }
}
