// Log-probabilities of rows of logits x [rows, C], read back compactly: with m_r = max_c x[r, c] and
// s_r = sum_c exp(x[r, c] - m_r), log_softmax(x)[r, c] = x[r, c] - m_r - log(s_r), taken at the row's target
// token and at its K largest entries. out [rows, K + 1, 2] (u32): entry 0 is (bits of the target's
// log-probability, target id); entries 1..K are the K largest in descending order (ties: lower index
// first), each (bits of its log-probability, its id). A target outside [0, C) gets NaN. NaN entries are
// never picked; where fewer than K entries are not NaN, the missing picks are (-inf - lse, id 0xffffffff).
// Bindings: 0 Params; 1 x: array<T> read [rows, C]; 2 targets: array<i32> read [rows];
// 3 out: array<u32> read_write [rows, K + 1, 2].
// Workgroup: 64 threads per row (include/row_workgroup.wgsl), one workgroup per row, 2-D grid beyond
// 65535 rows. Two passes over the row for K <= KMAX: the first gives m_r and s_r (online softmax,
// include/row_softmax_stats.wgsl) and each thread's max; the k-th largest of those maxima bounds the row's
// k-th largest from below, so in the second each thread keeps, sorted in private memory, the first K
// entries of its slice (c = lid, lid + 64, ...) in the order (value descending, index ascending) among the
// few at or above the bound. The workgroup then picks the row's first K from those lists, each pick a
// workgroup argmax over the threads' list heads (K x 64 candidates, not K passes). A larger K takes
// ceil(K / KMAX) such passes, each keeping the entries after the previous one's last pick. Computes in f32.
alias T = f32;

//! params
//!   rows: u32
//!   C: u32
//!   K: u32
//! bindings
//!   x: array<T> read
//!   targets: array<i32> read
//!   out: array<u32> read_write

{{include row_workgroup}}

{{include row_softmax_stats}}

const NONE: u32 = 0xffffffffu;
// The most entries a thread keeps in one pass: OpenAI's largest top_logprobs.
const KMAX: u32 = 20u;

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

// Whether (v, i) comes before (w, j) in the order of the top entries: larger value first, then lower
// index. Any value comes before (-inf, NONE); NaN comes before nothing.
fn ahead(v: f32, i: u32, w: f32, j: u32) -> bool {
  return v > w || (v == w && i < j);
}

// The workgroup's first (value, index) pair in that order.
fn workgroup_first(lid: u32, v: f32, i: u32) -> vec2<u32> {
  best_v[lid] = v;
  best_i[lid] = i;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s && ahead(best_v[lid + s], best_i[lid + s], best_v[lid], best_i[lid])) {
      best_v[lid] = best_v[lid + s];
      best_i[lid] = best_i[lid + s];
    }
    workgroupBarrier();
  }
  let r = vec2<u32>(bitcast<u32>(best_v[0]), best_i[0]);
  workgroupBarrier();
  return r;
}

// The k-th largest (1 <= k <= WG) of the values the threads pass, ties broken by thread index; every
// thread gets it. v must not be NaN.
fn workgroup_kth_largest(lid: u32, v: f32, k: u32) -> f32 {
  best_v[lid] = v;
  workgroupBarrier();
  var rank = 0u;
  for (var u = 0u; u < WG; u++) {
    let w = best_v[u];
    if (w > v || (w == v && u < lid)) { rank++; }
  }
  workgroupBarrier();
  if (rank == k - 1u) { best_v[0] = v; }
  workgroupBarrier();
  let r = best_v[0];
  workgroupBarrier();
  return r;
}

fn row_main(row: u32, base: u32, lid: u32) {
  let neg_inf = f32_from_bits(0xff800000u);
  let o = row * (p.K + 1u) * 2u;
  var st = softmax_stats_empty();
  for (var c = lid; c < p.C; c += WG) { softmax_stats_add(&st, f32(x[base + c])); }
  // The k-th largest of the threads' maxima: k entries are at least that, so the row's first k are too.
  var bound = neg_inf;
  if (p.K > 0u) { bound = workgroup_kth_largest(lid, st.m, min(p.K, KMAX)); }
  st = workgroup_softmax_stats(lid, st);
  let lse = st.m + log(st.s);
  if (lid == 0u) {
    let t = targets[row];
    let inside = t >= 0 && u32(t) < p.C;
    out[o] = bitcast<u32>(select(f32_from_bits(0x7fc00000u), f32(x[base + select(0u, u32(t), inside)]) - lse, inside));
    out[o + 1u] = bitcast<u32>(t);
  }
  // This thread's first `count` entries of the pass, in the order; (-inf, NONE) where it has fewer.
  var top_v: array<f32, KMAX>;
  var top_i: array<u32, KMAX>;
  // The last pick of the previous pass: each pass keeps only the entries after it.
  var last_v = neg_inf;
  var last_i = NONE;
  for (var first = 0u; first < p.K; first += KMAX) {
    let count = min(KMAX, p.K - first);
    for (var j = 0u; j < count; j++) {
      top_v[j] = neg_inf;
      top_i[j] = NONE;
    }
    // The list's last entry, the one an entry must come before to enter it.
    var floor_v = neg_inf;
    var floor_i = NONE;
    for (var c = lid; c < p.C; c += WG) {
      let v = f32(x[base + c]);
      let candidate = select(ahead(last_v, last_i, v, c), v >= bound, first == 0u);
      // This thread's entries come in ascending index, so one equal to a kept entry comes after it.
      if (candidate && ahead(v, c, floor_v, floor_i)) {
        var j = count - 1u;
        for (; j > 0u && ahead(v, c, top_v[j - 1u], top_i[j - 1u]); j--) {
          top_v[j] = top_v[j - 1u];
          top_i[j] = top_i[j - 1u];
        }
        top_v[j] = v;
        top_i[j] = c;
        floor_v = top_v[count - 1u];
        floor_i = top_i[count - 1u];
      }
    }
    // Each pick is the first of the threads' list heads; the thread it came from moves to its next entry.
    var head = 0u;
    for (var j = 0u; j < count; j++) {
      var hv = neg_inf;
      var hi = NONE;
      if (head < count) {
        hv = top_v[head];
        hi = top_i[head];
      }
      let b = workgroup_first(lid, hv, hi);
      last_v = bitcast<f32>(b.x);
      last_i = b.y;
      // After a NONE pick every list is spent, so moving thread NONE % WG's head changes nothing.
      if (last_i % WG == lid) { head++; }
      if (lid == 0u) {
        let q = o + 2u * (first + j + 1u);
        out[q] = bitcast<u32>(last_v - lse);
        out[q + 1u] = last_i;
      }
    }
  }
}
