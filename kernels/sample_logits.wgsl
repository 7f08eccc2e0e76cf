// One token drawn per row of logits x [B, V] with Hugging Face's warpers in their order: s = x / temperature,
// top-k (tokens below the k-th largest logit dropped, ties with it kept), p = softmax(s), top-p (TopPLogitsWarper:
// ascending order, ties higher index first, tokens dropped while the cumulative p <= 1 - top_p, the last kept),
// then the first token, in index order, whose running sum of kept p exceeds u[b] * (sum of kept p); and that
// token's log-probability under the distribution drawn from (vLLM V0's sample logprob, which best_of sums):
// (s - max s) - log(sum of exp(s - max s) over top-k's tokens) - log(top-p's kept share of their p).
// Bindings: 0 Params; 1 x: array<T> read [B, V]; 2 u: array<f32> read [B]; 3 probs: array<f32> read_write [B, V]
// (scratch: each row's p); 4 ids: array<i32> read_write [B]; 5 logprobs: array<f32> read_write [B].
// Workgroup: WG threads per row (256, or 64 on CPU drivers), no sort. The k-th logit: a radix select on the
// values' order-preserving bits, log2(WG) at a time (a histogram of WG bins per step). When at most CAP tokens have p > 0 (top-k kept few), they
// are gathered in index order into workgroup memory, ranked for top-p by counting, and drawn from there; else the
// top-p cut is found by bisection on p's bits (a sum per step) and the draw scans contiguous chunks of the row,
// one per thread. A 2-D grid beyond 65535 rows.
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
//!   logprobs: array<f32> read_write

const WG: u32 = {{WG}}u;          // 256 on GPUs; 64 on CPU drivers, where a wide workgroup is slow to compile
const DIGIT: u32 = {{DIGIT}}u;    // log2(WG): bits of the radix select's digit, one bin per thread
const SUM: u32 = 0u;
const MIN: u32 = 1u;
const MAX: u32 = 2u;

var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;
var<workgroup> hist: array<atomic<u32>, WG>;
var<workgroup> chosen: vec2<u32>;
var<workgroup> kept_count: u32;

// The gathered tokens of p > 0 in index order (p, index), their ranks in top-p's ascending order, and p sorted.
const CAP: u32 = 512u;
const PER: u32 = CAP / WG;
var<workgroup> cp: array<f32, CAP>;
var<workgroup> ci: array<u32, CAP>;
var<workgroup> rank: array<u32, CAP>;
var<workgroup> sorted: array<f32, CAP>;

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

// Reductions and scans over the WG = BLK x BLK threads in three barriers each (few barriers keep the
// module quick to compile where barriers are costly, as on CPU drivers): 16 threads sum or bound 16
// values each, then every thread combines the 16 partials it needs.
const BLK: u32 = {{BLK}}u;        // sqrt(WG)
var<workgroup> part_f: array<f32, BLK>;
var<workgroup> part_u: array<u32, BLK>;

fn combine_f(a: f32, b: f32, op: u32) -> f32 {
  return select(a + b, max(a, b), op == MAX);
}

fn combine_u(a: u32, b: u32, op: u32) -> u32 {
  return select(select(a + b, min(a, b), op == MIN), max(a, b), op == MAX);
}

fn reduce_f(lid: u32, v: f32, op: u32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  if (lid < BLK) {
    var a = red_f[lid * BLK];
    for (var j = 1u; j < BLK; j++) { a = combine_f(a, red_f[lid * BLK + j], op); }
    part_f[lid] = a;
  }
  workgroupBarrier();
  var r = part_f[0];
  for (var j = 1u; j < BLK; j++) { r = combine_f(r, part_f[j], op); }
  workgroupBarrier();
  return r;
}

fn reduce_u(lid: u32, v: u32, op: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  if (lid < BLK) {
    var a = red_u[lid * BLK];
    for (var j = 1u; j < BLK; j++) { a = combine_u(a, red_u[lid * BLK + j], op); }
    part_u[lid] = a;
  }
  workgroupBarrier();
  var r = part_u[0];
  for (var j = 1u; j < BLK; j++) { r = combine_u(r, part_u[j], op); }
  workgroupBarrier();
  return r;
}

// Exclusive prefix sums over the threads in index order, and the total.
fn scan_f(lid: u32, v: f32) -> vec2<f32> {
  red_f[lid] = v;
  workgroupBarrier();
  if (lid < BLK) {
    var a = 0.0;
    for (var j = 0u; j < BLK; j++) { a += red_f[lid * BLK + j]; }
    part_f[lid] = a;
  }
  workgroupBarrier();
  var before = 0.0;
  var total = 0.0;
  for (var j = 0u; j < BLK; j++) {
    before += select(0.0, part_f[j], j < lid / BLK);
    total += part_f[j];
  }
  for (var j = (lid / BLK) * BLK; j < lid; j++) { before += red_f[j]; }
  workgroupBarrier();
  return vec2<f32>(before, total);
}

fn scan_u(lid: u32, v: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  if (lid < BLK) {
    var a = 0u;
    for (var j = 0u; j < BLK; j++) { a += red_u[lid * BLK + j]; }
    part_u[lid] = a;
  }
  workgroupBarrier();
  var before = 0u;
  for (var j = 0u; j < lid / BLK; j++) { before += part_u[j]; }
  for (var j = (lid / BLK) * BLK; j < lid; j++) { before += red_u[j]; }
  workgroupBarrier();
  return before;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.B) { return; }
  let V = p.V;
  let base = row * V;

  // Top-k: the key of the k-th largest logit, DIGIT bits a step from the top: the digit whose bin holds the
  // k-th of the keys that share the digits found so far, counting from the largest.
  var kth = 0u;
  if (p.top_k > 0u && p.top_k < V) {
    var left = p.top_k;
    for (var hi = 32u; hi > 0u; hi -= min(hi, DIGIT)) {
      let shift = hi - min(hi, DIGIT);
      let high = select(0xffffffffu << hi, 0u, hi == 32u);
      let digits = (1u << (hi - shift)) - 1u;
      atomicStore(&hist[lid], 0u);
      workgroupBarrier();
      for (var i = lid; i < V; i += WG) {
        let key = order_key(f32(x[base + i]));
        if ((key & high) == kth) { atomicAdd(&hist[(key >> shift) & digits], 1u); }
      }
      workgroupBarrier();
      // Thread t holds bin WG - 1 - t; the keys in the bins above it are the exclusive scan.
      let bin = WG - 1u - lid;
      let c = atomicLoad(&hist[bin]);
      let above = scan_u(lid, c);
      if (above < left && above + c >= left) { chosen = vec2<u32>(bin, above); }
      workgroupBarrier();
      let d = chosen;
      kth |= d.x << shift;
      left -= d.y;
      workgroupBarrier();
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
  var n = 0u;
  for (var i = lid; i < V; i += WG) {
    let q = probs[base + i] / z;
    probs[base + i] = q;
    n += select(0u, 1u, q > 0.0);
  }
  n = reduce_u(lid, n, SUM);
  if (lid == 0u) { kept_count = n; }
  if (workgroupUniformLoad(&kept_count) <= CAP) {
    sample_gathered(row, base, lid, m, z);
    return;
  }

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
  if (lid == 0u) { write_pick(row, base, min(select(pick, fallback, pick == 0xffffffffu), V - 1u), m, z, scanned.y); }
}

// The picked token and its log-probability: s = x / temperature with m its kept maximum, z the sum of exp(s - m)
// over top-k's tokens, and `kept` top-p's kept share of their p.
fn write_pick(row: u32, base: u32, id: u32, m: f32, z: f32, kept: f32) {
  ids[row] = i32(id);
  logprobs[row] = (f32(x[base + id]) / p.temperature - m) - log(z) - log(kept);
}

// Top-p and the draw over the n <= CAP tokens of p > 0, gathered into workgroup memory in index order.
fn sample_gathered(row: u32, base: u32, lid: u32, m: f32, z: f32) {
  let V = p.V;
  let n = kept_count;
  let chunk = (V + WG - 1u) / WG;
  let start = min(lid * chunk, V);
  let end = min(start + chunk, V);
  storageBarrier();
  var c = 0u;
  for (var i = start; i < end; i++) { c += select(0u, 1u, probs[base + i] > 0.0); }
  var at = scan_u(lid, c);
  for (var i = start; i < end; i++) {
    let q = probs[base + i];
    if (q > 0.0) {
      cp[at] = q;
      ci[at] = i;
      at++;
    }
  }
  workgroupBarrier();
  // Top-p: rank in ascending order (ties: higher index first), then the cumulative p in that order; the
  // first `cut` ranks (cumulative <= drop_mass, at most n - 1) are dropped.
  var cut = 0u;
  if (p.top_p_on != 0u) {
    for (var j = lid; j < n; j += WG) {
      var r = 0u;
      for (var l = 0u; l < n; l++) { r += select(0u, 1u, cp[l] < cp[j] || (cp[l] == cp[j] && ci[l] > ci[j])); }
      rank[j] = r;
      sorted[r] = cp[j];
    }
    workgroupBarrier();
    var mass = 0.0;
    for (var r = lid * PER; r < min(lid * PER + PER, n); r++) { mass += sorted[r]; }
    var cum = scan_f(lid, mass).x;
    var dropped = 0u;
    for (var r = lid * PER; r < min(lid * PER + PER, n); r++) {
      cum += sorted[r];
      dropped += select(0u, 1u, cum <= p.drop_mass && r + 1u < n);
    }
    cut = reduce_u(lid, dropped, SUM);
  }
  // The draw in index order over the kept tokens.
  var mass = 0.0;
  var last = 0u;
  var has_last = false;
  for (var j = lid * PER; j < min(lid * PER + PER, n); j++) {
    if (p.top_p_on == 0u || rank[j] >= cut) {
      mass += cp[j];
      last = ci[j];
      has_last = true;
    }
  }
  let scanned = scan_f(lid, mass);
  let goal = u[row] * scanned.y;
  var run = scanned.x;
  var pick = 0xffffffffu;
  for (var j = lid * PER; j < min(lid * PER + PER, n); j++) {
    if (p.top_p_on == 0u || rank[j] >= cut) {
      run += cp[j];
      if (run > goal) {
        pick = ci[j];
        break;
      }
    }
  }
  pick = reduce_u(lid, pick, MIN);
  let fallback = reduce_u(lid, select(0u, last, has_last), MAX);
  if (lid == 0u) { write_pick(row, base, min(select(pick, fallback, pick == 0xffffffffu), V - 1u), m, z, scanned.y); }
}
