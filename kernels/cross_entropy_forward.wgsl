// Cross-entropy forward, one row of contiguous logits [N, V] per workgroup, without materialising
// softmax: lse[n] = m + log(sum_v exp(x[n, v] - m)), m = max_v x[n, v];
// loss[n] = lse[n] - x[n, t] for t = targets[n], 0 where t == ignore_index; valid[n] = 1 or 0.
// A target outside [0, V) that is not ignore_index gives NaN (host targets are checked before dispatch).
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 targets: array<i32> read ([N]);
// 3 loss: array<f32> read_write ([N]); 4 lse: array<f32> read_write ([N]); 5 valid: array<f32> read_write ([N]).
// Workgroup: 64 threads per row, strided over V in one pass (online max and sum of exp), tree
// reduction in workgroup memory; one
// workgroup per row, 2-D grid beyond 65535 rows. Computes in f32.
alias T = f32;

//! params
//!   N: u32
//!   V: u32
//!   ignore_index: i32
//! bindings
//!   x: array<T> read
//!   targets: array<i32> read
//!   loss: array<f32> read_write
//!   lse: array<f32> read_write
//!   valid: array<f32> read_write

var<workgroup> partial: array<f32, 64>;
var<workgroup> partial_max: array<f32, 64>;

// Not const-evaluated, so NaN and infinities are allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

// Infinities by their bits: compilers may fold float comparisons with them.
fn is_neg_inf(v: f32) -> bool {
  return bitcast<u32>(v) == 0xff800000u;
}

fn is_pos_inf(v: f32) -> bool {
  return bitcast<u32>(v) == 0x7f800000u;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; }
  let base = row * p.V;
  // One pass: each thread keeps a running max m and a sum s of exp(x - m), rescaled when m grows.
  let neg_inf = f32_from_bits(0xff800000u);
  var m = neg_inf;
  var s = 0.0;
  for (var v = lid; v < p.V; v += 64u) {
    let xv = f32(x[base + v]);
    // exp(-inf - m) is 0 for every m: skipping -inf keeps a row that starts with it free of
    // exp(-inf - -inf) = NaN. A +inf maximum makes the sum NaN, as exp(x - max) does in torch.
    if (is_neg_inf(xv)) { continue; }
    if (xv > m) {
      s = s * exp(m - xv) + select(1.0, f32_from_bits(0x7fc00000u), is_pos_inf(xv));
      m = xv;
    } else {
      s += exp(xv - m);
    }
  }
  partial_max[lid] = m;
  partial[lid] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let m1 = partial_max[lid];
      let m2 = partial_max[lid + k];
      let mm = max(m1, m2);
      // a row with no finite logit so far has sums of 0 (exp(-inf - -inf) would be NaN)
      let all_neg_inf = is_neg_inf(mm);
      let total = partial[lid] * select(exp(m1 - mm), 1.0, all_neg_inf) + partial[lid + k] * select(exp(m2 - mm), 1.0, all_neg_inf);
      partial_max[lid] = mm;
      partial[lid] = total;
    }
    workgroupBarrier();
  }
  m = partial_max[0];
  if (lid == 0u) {
    let l = m + log(partial[0]);
    lse[row] = l;
    let t = targets[row];
    if (t == p.ignore_index) {
      loss[row] = 0.0;
      valid[row] = 0.0;
    } else if (t < 0 || u32(t) >= p.V) {
      loss[row] = f32_from_bits(0x7fc00000u);
      valid[row] = 1.0;
    } else {
      loss[row] = l - f32(x[base + u32(t)]);
      valid[row] = 1.0;
    }
  }
}
