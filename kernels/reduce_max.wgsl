// Max over the middle axis of a contiguous [outer, n, inner] tensor, with the index of the first
// maximum (as torch.max(dim) returns): y[o, j] = max_k x[o, k, j], idx[o, j] = argmax_k.
// Bindings: 0 Params (uniform); 1 x: array<T> read; 2 y: array<T> read_write; 3 idx: array<i32> read_write.
// Workgroup: 64 threads per output element, strided over k, then a tree reduction; 2-D grid beyond 65535.
alias T = f32;

//! params
//!   outer: u32
//!   n: u32
//!   inner: u32
//! bindings
//!   x: array<T> read
//!   y: array<T> read_write
//!   idx: array<i32> read_write

{{include middle_axis}}

var<workgroup> best: array<f32, 64>;
var<workgroup> best_at: array<u32, 64>;

// Not const-evaluated, so -inf is allowed.
fn f32_from_bits(bits: u32) -> f32 {
  return bitcast<f32>(bits);
}

// NaN by its bits: compilers may fold v != v to false.
fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn better(v: f32, k: u32, bv: f32, bk: u32) -> bool {
  // NaN wins (propagates, as in torch); otherwise larger, then smaller index.
  if (is_nan(v)) { return !is_nan(bv) || k < bk; }
  if (is_nan(bv)) { return false; }
  return v > bv || (v == bv && k < bk);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * nwg.x;
  let valid = o < p.outer * p.inner;
  let base = middle_axis_base(o);
  var bv = f32_from_bits(0xff800000u);
  var bk = 0xffffffffu;
  if (valid) {
    for (var k = lid; k < p.n; k += 64u) {
      let v = f32(x[base + k * p.inner]);
      if (better(v, k, bv, bk)) { bv = v; bk = k; }
    }
  }
  best[lid] = bv;
  best_at[lid] = bk;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s && better(best[lid + s], best_at[lid + s], best[lid], best_at[lid])) {
      best[lid] = best[lid + s];
      best_at[lid] = best_at[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u && valid) {
    y[o] = T(best[0]);
    idx[o] = i32(best_at[0]);
  }
}
