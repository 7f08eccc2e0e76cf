/// Shared by the fused matrix-vector kernels (matvec_fused, matvec_fused_int8, matvec_fused_nf4): a cat output's
/// bias added to a weight's product in the epilogue, then a LoRA adapter's update, PEFT's order (the kernel defines
/// h_elem and binds b): the f32 product and its bias rounded to T once, as F.linear's addmm rounds, then the update
/// rounded as the separate ops round it (round_to_t: compilers fold f32(T(v))).

/**
 * Weight `part`'s output `base` (its product rounded to T, with its bias where it has one) for row m and its
 * output nl, with its adapter's update added (none where lr = 0).
 */
fn with_lora(base: f32, part: u32, nl: u32, m: u32) -> f32 {
  var rank = p.lr0;
  var hc = p.lh0;
  var bo = p.lb0;
  var s = p.ls0;
  if (part == 1u) { rank = p.lr1; hc = p.lh1; bo = p.lb1; s = p.ls1; }
  if (part == 2u) { rank = p.lr2; hc = p.lh2; bo = p.lb2; s = p.ls2; }
  if (rank == 0u) { return base; }
  let hi = p.h_offset + m * p.h_row + hc;
  let bi = bo + nl * rank;
  var u = 0.0;
  for (var j = 0u; j < rank; j++) { u += h_elem(hi + j) * f32(b[bi + j]); }
  return round_to_t(base + round_to_t(round_to_t(u) * s));
}

/** A cat output n's f32 product with its bias added where p.bias is set (b[p.bias_offset + n]), rounded to T once. */
fn with_bias(v: f32, n: u32) -> f32 {
  if (p.bias == 0u) { return round_to_t(v); }
  return round_to_t(v + f32(b[p.bias_offset + n]));
}
