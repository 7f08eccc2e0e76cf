/// Shared by softmax_forward, log_softmax_top_k, log_softmax_at_max and cross_entropy_forward (after a WG
/// constant, as row_workgroup declares): a row's max m and sum of exp(x - m) in one pass over it (online
/// softmax). Each thread folds its entries into a running max and a sum rescaled whenever the max grows; the
/// workgroup then combines the threads' pairs in a tree. Declares f32_from_bits; row_softmax_stats reads x.
// The max m of a row or of part of it, and s = sum exp(x - m) over it; (-inf, 0) before any entry.
struct SoftmaxStats {
  m: f32,
  s: f32,
}

var<workgroup> wg_stats: array<SoftmaxStats, WG>;

// Not const-evaluated, so infinities and NaN are allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

fn softmax_stats_empty() -> SoftmaxStats {
  return SoftmaxStats(f32_from_bits(0xff800000u), 0.0);
}

// Folds entry v into st. As in exp(x - max(x)): a NaN entry makes s NaN, and so does a +inf one once the
// parts are merged (exp(+inf - +inf)); a -inf one adds 0, also while the max is still -inf (where
// exp(-inf - -inf) would be NaN). m is never NaN.
fn softmax_stats_add(st: ptr<function, SoftmaxStats>, v: f32) {
  if (v > (*st).m) {
    (*st).s = (*st).s * exp((*st).m - v) + 1.0;
    (*st).m = v;
  } else {
    let neg_inf = f32_from_bits(0xff800000u);
    (*st).s += exp(v - select((*st).m, 0.0, (*st).m == neg_inf));
  }
}

// The pair of two disjoint parts of a row.
fn softmax_stats_merge(a: SoftmaxStats, b: SoftmaxStats) -> SoftmaxStats {
  let m = max(a.m, b.m);
  // Both parts hold only -inf (or nothing): their sums are 0 or NaN, and exp(-inf - -inf) would be NaN.
  if (m == f32_from_bits(0xff800000u)) { return SoftmaxStats(m, a.s + b.s); }
  return SoftmaxStats(m, a.s * exp(a.m - m) + b.s * exp(b.m - m));
}

// The workgroup's pair from each thread's (WG > 1, so every part goes through a merge); every thread gets
// it. All threads must call it.
fn workgroup_softmax_stats(lid: u32, st: SoftmaxStats) -> SoftmaxStats {
  wg_stats[lid] = st;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { wg_stats[lid] = softmax_stats_merge(wg_stats[lid], wg_stats[lid + s]); }
    workgroupBarrier();
  }
  let r = wg_stats[0];
  workgroupBarrier();
  return r;
}

// The row of x from `base` (`count` entries, thread lid reading every WG-th from lid): its max and sum.
fn row_softmax_stats(base: u32, count: u32, lid: u32) -> SoftmaxStats {
  var st = softmax_stats_empty();
  for (var c = lid; c < count; c += WG) { softmax_stats_add(&st, f32(x[base + c])); }
  return workgroup_softmax_stats(lid, st);
}
