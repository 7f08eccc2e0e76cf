/// The fused matrix-vector products of matvec_fused.wgsl (norm prologue, cat / residual add / SwiGLU epilogue,
/// unmerged LoRA adapters) over quantized weights: the entry point and all but the weight reading, shared by
/// matvec_fused_int8 and matvec_fused_nf4 (a new format is its kernel file: bindings and the few functions below).
// Row nl of a weight part covers elements nl K4 .. nl K4 + K4 - 1 of its code stream (K4 = 4 p.K), chunks as
// in include/matvec_dequant.wgsl (a row's end chunks shared with its neighbours, their elements masked).
// x [MR, 4 p.K] is read as vec4<T> (CE = 4: offsets and strides of x count vec4s), normalized per element
// as rmsnorm_forward rounds where p.norm is set; h (the adapters' x A^T) is read from r (cat, swiglu) or
// from g (add, which has no norm). The kernel defines E, setup(li), load_codes(part, i) -> vec4<u32>,
// chunk_dots(part, nl, ch, w) -> array<f32, MR> and row_scale(part, nl) (1 where the chunks apply it).
//! params
//!   N: u32
//!   K: u32              // vec4s per row of x
//!   n1: u32
//!   n2: u32
//!   x_offset: u32
//!   x_row: u32
//!   chunks: u32         // the most 16-byte chunks one weight row covers
//!   r_offset: u32
//!   r_row: u32
//!   eps: f32
//!   epi: u32
//!   norm: u32
//!   h_offset: u32
//!   h_row: u32
//!   lr0: u32
//!   lr1: u32
//!   lr2: u32
//!   lh0: u32
//!   lh1: u32
//!   lh2: u32
//!   lb0: u32
//!   lb1: u32
//!   lb2: u32
//!   ls0: f32
//!   ls1: f32
//!   ls2: f32
//!   bias: u32           // cat: the biases at b[bias_offset ..] added before the adapters' updates
//!   bias_offset: u32
//!   o0: f32             // NF4: each weight's absmax offset (nf4_absmax's offset)
//!   o1: f32
//!   o2: f32

const SG: u32 = {{SG}}u;
const ROWS: u32 = {{ROWS}}u;
const U: u32 = {{U}}u;
const G: u32 = {{G}}u;
const MR: u32 = {{MR}}u;
const CE: u32 = 4u;
const NORM_WG: u32 = 64u;
const T_IS_F16: bool = {{T_IS_F16}};
{{include round_to_t}}

var<workgroup> norm_partial: array<f32, NORM_WG>;
var<workgroup> norm_r: array<f32, MR>;

/** Element i of x, in f32. */
fn x_elem(i: u32) -> f32 {
  return f32(x[i / 4u][i % 4u]);
}

/** vec4 k4 of row m of x, normalized where p.norm is set: T(g * T(x * r)) per element, as rmsnorm_forward rounds (round_to_t). */
fn x_vec(m: u32, k4: u32) -> vec4<f32> {
  let xv = x[p.x_offset + m * p.x_row + k4];
  if (p.norm == 0u) { return vec4<f32>(xv); }
  return round_to_t4(vec4<f32>(g[k4]) * round_to_t4(vec4<f32>(xv) * norm_r[m]));
}

/** Element i of h (the adapters' x A^T): in r, or in g for the add epilogue. */
fn h_elem(i: u32) -> f32 {
  if (p.epi == 1u) { return f32(g[i / 4u][i % 4u]); }
  return f32(r[i]);
}

{{include matvec_fused_lora}}

@compute @workgroup_size(SG * G)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(local_invocation_index) li: u32) {
  setup(li);
  workgroupBarrier();
  // No early return past N: subgroupAdd needs uniform control flow, and n0 varies with the subgroup.
  let n0 = ((wid.x + wid.y * nwg.x) * G + li / SG) * ROWS;
  let k = p.K * 4u;
  var parts: array<u32, ROWS>;
  var locals: array<u32, ROWS>;
  var first: array<u32, ROWS>;
  var count: array<u32, ROWS>;
  for (var i = 0u; i < ROWS; i++) {
    let n = min(n0 + i, p.N - 1u);
    if (p.epi == 0u && n >= p.n2) {
      parts[i] = 2u;
      locals[i] = n - p.n2;
    } else if (p.epi == 0u && n >= p.n1) {
      parts[i] = 1u;
      locals[i] = n - p.n1;
    } else {
      parts[i] = 0u;
      locals[i] = n;
    }
    first[i] = locals[i] * k / E;
    count[i] = (locals[i] * k + k - 1u) / E - first[i] + 1u;
  }
  {{include matvec_fused_norm}}
  var sums: array<f32, ROWS * MR>;
  var sums_up: array<f32, ROWS * MR>;
  // p.chunks: the most chunks a row covers, so that the loop's bound is uniform.
  for (var c0 = 0u; c0 < p.chunks; c0 += SG * U) {
    // Every load of the pass first (clamped into the row), so that all of them are in flight; SwiGLU's up
    // rows (part 1) are the gate rows' of the same index.
    var w: array<vec4<u32>, ROWS * U>;
    var wu: array<vec4<u32>, ROWS * U>;
    for (var t = 0u; t < ROWS * U; t++) {
      let i = t % ROWS;
      let ci = first[i] + min(c0 + lane + (t / ROWS) * SG, count[i] - 1u);
      w[t] = load_codes(parts[i], ci);
      if (p.epi == 2u) { wu[t] = load_codes(1u, ci); }
    }
    // One loop over the pass's chunks (not one per row and load), so that the format's decoding is inlined
    // twice, not 2 ROWS U times: CPU drivers' compile time grows with each copy.
    for (var t = 0u; t < ROWS * U; t++) {
      let i = t % ROWS;
      let c = c0 + lane + (t / ROWS) * SG;
      if (c < count[i]) {
        let d = chunk_dots(parts[i], locals[i], first[i] + c, w[t]);
        for (var m = 0u; m < MR; m++) { sums[i * MR + m] += d[m]; }
        if (p.epi == 2u) {
          let du = chunk_dots(1u, locals[i], first[i] + c, wu[t]);
          for (var m = 0u; m < MR; m++) { sums_up[i * MR + m] += du[m]; }
        }
      }
    }
  }
  // Row scales (int8's absmax) on each lane's sum before the reduction.
  for (var i = 0u; i < ROWS; i++) {
    let s = row_scale(parts[i], locals[i]);
    var su = 1.0;
    if (p.epi == 2u) { su = row_scale(1u, locals[i]); }
    for (var m = 0u; m < MR; m++) {
      sums[i * MR + m] *= s;
      sums_up[i * MR + m] *= su;
    }
  }
  {{include matvec_fused_store}}
}
