/// Shared by the fused matrix-vector kernels: the epilogue after the products, statements at the end of main
/// (the lane sums `sums` and `sums_up` of each row's products, its part and local row, reduced and stored).
for (var i = 0u; i < ROWS; i++) {
  let n = n0 + i;
  for (var m = 0u; m < MR; m++) {
    let total = subgroupAdd(sums[i * MR + m]);
    var up = 0.0;
    if (p.epi == 2u) { up = subgroupAdd(sums_up[i * MR + m]); }
    if (lane == 0u && n < p.N) {
      var out: f32;
      if (p.epi == 1u) {
        out = f32(r[p.r_offset + m * p.r_row + n] + T(with_lora(round_to_t(total), 0u, n, m)));
      } else if (p.epi == 2u) {
        let g = with_lora(round_to_t(total), 0u, n, m);
        out = g * (1.0 / (1.0 + exp(-g))) * with_lora(round_to_t(up), 1u, n, m);
      } else {
        out = with_lora(with_bias(total, n), parts[i], locals[i], m);
      }
      y[m * p.N + n] = T(out);
    }
  }
}
