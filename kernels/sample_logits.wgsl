// One token drawn per row of logits x [B, V] with Hugging Face's warpers in their order: s = x / temperature,
// top-k (tokens below the k-th largest logit dropped, ties with it kept), p = softmax(s), top-p (TopPLogitsWarper:
// ascending order, ties higher index first, tokens dropped while the cumulative p <= 1 - top_p, the last kept),
// then the first token, in index order, whose running sum of kept p exceeds u[b] * (sum of kept p).
// Bindings: 0 Params; 1 x: array<T> read [B, V]; 2 u: array<f32> read [B]; 3 probs: array<f32> read_write [B, V]
// (scratch: each row's p); 4 ids: array<i32> read_write [B].
// Workgroup: WG = 256 threads per row, no sort: the k-th logit and the top-p cut are found by bisection on the
// values' order-preserving bits (a count or a sum per step, reduced over the workgroup); the draw scans contiguous
// chunks, one per thread. A 2-D grid beyond 65535 rows.
alias T = f32;

//! params
//!   B: u32
//!   V: u32
//!   top_k: u32         // 0, or V and above: off
//!   top_p_on: u32      // 0: top_p is 1 (off)
//!   temperature: f32
//!   drop_mass: f32     // 1 - top_p, in float64 then rounded
//! bindings
//!   x: array<T> read
//!   u: array<f32> read
//!   probs: array<f32> read_write
//!   ids: array<i32> read_write

const WG: u32 = 256u;
const SUM: u32 = 0u;
const MIN: u32 = 1u;
const MAX: u32 = 2u;

var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;

// Not const-evaluated, so -inf is allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

// A key whose u32 order is the order of the values (-0 as +0, as comparisons see them).
fn order_key(v: f32) -> u32 {
  var b = bitcast<u32>(v);
  if ((b & 0x7fffffffu) == 0u) { b = 0u; }
  return select(b ^ 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn reduce_f(lid: u32, v: f32, op: u32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_f[lid] = select(red_f[lid] + red_f[lid + s], max(red_f[lid], red_f[lid + s]), op == MAX); }
    workgroupBarrier();
  }
  let r = red_f[0];
  workgroupBarrier();
  return r;
}

fn reduce_u(lid: u32, v: u32, op: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let a = red_u[lid];
      let b = red_u[lid + s];
      red_u[lid] = select(select(a + b, min(a, b), op == MIN), max(a, b), op == MAX);
    }
    workgroupBarrier();
  }
  let r = red_u[0];
  workgroupBarrier();
  return r;
}

// Exclusive prefix sums over the threads (Hillis-Steele); the total is red_*[WG - 1] + own value.
fn scan_f(lid: u32, v: f32) -> vec2<f32> {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = 1u; s < WG; s <<= 1u) {
    let add = select(0.0, red_f[max(lid, s) - s], lid >= s);
    workgroupBarrier();
    red_f[lid] += add;
    workgroupBarrier();
  }
  let r = vec2<f32>(red_f[lid] - v, red_f[WG - 1u]);
  workgroupBarrier();
  return r;
}

fn scan_u(lid: u32, v: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  for (var s = 1u; s < WG; s <<= 1u) {
    let add = select(0u, red_u[max(lid, s) - s], lid >= s);
    workgroupBarrier();
    red_u[lid] += add;
    workgroupBarrier();
  }
  let r = red_u[lid] - v;
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.B) { return; }
  let V = p.V;
  let base = row * V;

  // Top-k: the largest key with at least k logits at or above it is the k-th largest logit's.
  var kth = 0u;
  if (p.top_k > 0u && p.top_k < V) {
    for (var bit = 32u; bit > 0u; bit--) {
      let cand = kth | (1u << (bit - 1u));
      var c = 0u;
      for (var i = lid; i < V; i += WG) { c += select(0u, 1u, order_key(f32(x[base + i])) >= cand); }
      if (reduce_u(lid, c, SUM) >= p.top_k) { kth = cand; }
    }
  }

  // Softmax of the kept s = x / temperature; probs holds p (0 for dropped tokens).
  var m = f32_from_bits(0xff800000u);
  for (var i = lid; i < V; i += WG) {
    let v = f32(x[base + i]);
    if (order_key(v) >= kth) { m = max(m, v / p.temperature); }
  }
  m = reduce_f(lid, m, MAX);
  var z = 0.0;
  for (var i = lid; i < V; i += WG) {
    let v = f32(x[base + i]);
    let e = select(0.0, exp(v / p.temperature - m), order_key(v) >= kth);
    probs[base + i] = e;
    z += e;
  }
  z = reduce_f(lid, z, SUM);
  for (var i = lid; i < V; i += WG) { probs[base + i] = probs[base + i] / z; }

  // Top-p: tokens of p below the cut are dropped, those above kept, and of the `keep` tokens at the cut, the
  // lowest-indexed are kept (in ascending order ties come higher index first). p >= 0, so its bits are its key.
  var cut = 0u;
  var keep = 0u;
  if (p.top_p_on != 0u) {
    var pmax = 0.0;
    for (var i = lid; i < V; i += WG) { pmax = max(pmax, probs[base + i]); }
    let top = bitcast<u32>(reduce_f(lid, pmax, MAX));
    // The largest key whose mass at or below it stays <= drop_mass: every token up to it is dropped.
    var low = 0u;
    var below = 0.0;
    for (var bit = 30u; bit > 0u; bit--) {
      let cand = low | (1u << (bit - 1u));
      var s = 0.0;
      for (var i = lid; i < V; i += WG) {
        let q = probs[base + i];
        s += select(0.0, q, bitcast<u32>(q) <= cand);
      }
      s = reduce_f(lid, s, SUM);
      if (s <= p.drop_mass) { low = cand; below = s; }
    }
    cut = min(low + 1u, top);
    var c = 0u;
    for (var i = lid; i < V; i += WG) { c += select(0u, 1u, bitcast<u32>(probs[base + i]) == cut); }
    let ties = reduce_u(lid, c, SUM);
    let t = bitcast<f32>(cut);
    // Ties dropped: while below + j t <= drop_mass, at most all but one.
    let dropped = u32(clamp(floor((p.drop_mass - below) / t), 0.0, f32(ties - 1u)));
    keep = select(ties - dropped, 1u, low >= top);
  }

  // The draw: each thread's chunk of tokens, their kept mass scanned in index order.
  let chunk = (V + WG - 1u) / WG;
  let start = min(lid * chunk, V);
  let end = min(start + chunk, V);
  storageBarrier();
  var ties = 0u;
  for (var i = start; i < end; i++) { ties += select(0u, 1u, bitcast<u32>(probs[base + i]) == cut); }
  let ties_before = scan_u(lid, ties);
  var mass = 0.0;
  var last = 0u;
  var has_last = false;
  var tie = ties_before;
  for (var i = start; i < end; i++) {
    let q = probs[base + i];
    let k = bitcast<u32>(q);
    var kept = k > cut;
    if (k == cut) {
      kept = tie < keep && q > 0.0;
      tie++;
    }
    if (kept) {
      mass += q;
      last = i;
      has_last = true;
    }
  }
  let scanned = scan_f(lid, mass);
  let goal = u[row] * scanned.y;
  var run = scanned.x;
  var pick = 0xffffffffu;
  tie = ties_before;
  for (var i = start; i < end; i++) {
    let q = probs[base + i];
    let k = bitcast<u32>(q);
    var kept = k > cut;
    if (k == cut) {
      kept = tie < keep && q > 0.0;
      tie++;
    }
    if (kept) {
      run += q;
      if (run > goal) {
        pick = i;
        break;
      }
    }
  }
  pick = reduce_u(lid, pick, MIN);
  let fallback = reduce_u(lid, select(0u, last, has_last), MAX);
  if (lid == 0u) { ids[row] = i32(min(select(pick, fallback, pick == 0xffffffffu), V - 1u)); }
}
