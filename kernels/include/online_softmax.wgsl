// The online softmax step of a row kept in private memory (v1 attention forward and decode): folds
// score s into the running max m and sum l, rescaling the accumulator acc, and returns exp(s - m).
fn online_softmax(s: f32, m: ptr<function, f32>, l: ptr<function, f32>, acc: ptr<function, array<vec4<f32>, DMAX4>>) -> f32 {
  if (s > *m) {
    let corr = exp(*m - s);
    *l *= corr;
    for (var c = 0u; c < p.D4; c++) { (*acc)[c] *= corr; }
    *m = s;
  }
  let pj = exp(s - *m);
  *l += pj;
  return pj;
}
