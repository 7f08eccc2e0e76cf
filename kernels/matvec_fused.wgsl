// Fused matrix-vector products of decoding (M <= 4 rows of x), the loop of matvec.v3 with an epilogue:
// y[m, n] = epi(sum_k x[m, k] w[n, k]), w stored [N, K] with rows along k (a linear layer's weight).
// epi 0 (cat): up to three weights w0 [n1, K], w1 [n2 - n1, K], w2 [N - n2, K] whose rows concatenate,
//   y[m, n] = T(x[m] . row n), one pass over x for q/k/v (or any projections sharing their input).
// epi 1 (add): y[m, n] = T(r[m, n] + T(x[m] . w0[n])), addmm with beta = alpha = 1: the residual add
//   of o_proj and down_proj, rounded as matmul then add round.
// epi 2 (swiglu): y[m, n] = T(silu(g) * u), g = T(x[m] . w0[n]), u = T(x[m] . w1[n]): gate and up
//   in one pass, rounded as matmul then swiglu round.
// A LoRA adapter per weight (lr_i > 0, PEFT's base(x) + B(A(x)) * s at inference): h [M, h_row] holds
//   h = x A_i^T of the adapted weights (the caller's earlier pass), b their B_i [rows_i, lr_i] flat; the
//   output is T(base + T(T(h[m, lh_i..] . B_i[n]) * ls_i)), rounded as matmul, mul and add round, before
//   the epilogue (weight i: part i of cat, gate 0 and up 1 of swiglu, 0 of add). h is read from r (cat,
//   swiglu) or from w1 (add, whose r is the residual). With K = 0 there is no base product (the update
//   added to a residual: an adapter beside a quantized product).
// bias = 1 (cat only): output n gains the bias b[bias_offset + n] (the weights' biases concatenated, in the
//   buffer of the adapters' B where there are adapters) before the adapter's update, T(sum + bias) as base (the
//   f32 sum and the bias rounded once, as F.linear's addmm), then the update on top: PEFT's order.
// norm = 1: x is first normalized as rmsnorm_forward.wgsl does (LLaMA's RMSNorm with weight g [K] and eps,
//   the same sum order: 64 strided partial sums, then its tree), each workgroup for itself, so that the
//   norm before q/k/v or gate/up needs no dispatch of its own.
// x and w are read in 16-byte chunks (CH: vec4<u32> of 8 f16, or vec4<f32>); offsets and strides of x
// and w count chunks, those of r elements. A workgroup holds G subgroups of SG lanes, each owning ROWS
// outputs; per pass each lane loads U chunks of each row (lane + j SG) and multiplies each with the MR
// rows of x, so the weights are read once for all rows. Sums in f32 in matvec.v3's order (lane-strided
// chunks, then subgroupAdd), so epi 0 equals matvec.v3 at the same SG and U bit for bit.
// Bindings: 0 Params; 1 x: array<CH> read; 2 w0, 3 w1, 4 w2: array<CH> read (unused ones bound to w0);
// 5 r: array<T> read (x where unused); 6 g: array<CH> read (x where unused); 7 b: array<T> read (B, the bias, or x
// where unused); 8 y: array<T> read_write ([M, N]). Grid: groups of G ROWS rows.
enable subgroups;
alias T = f32;
alias CH = {{CH}};

//! params
//!   N: u32
//!   K: u32
//!   n1: u32
//!   n2: u32
//!   x_offset: u32
//!   x_row: u32
//!   w0_offset: u32
//!   w1_offset: u32
//!   w2_offset: u32
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
//!   bias: u32
//!   bias_offset: u32
//! bindings
//!   x: array<CH> read
//!   w0: array<CH> read
//!   w1: array<CH> read
//!   w2: array<CH> read
//!   r: array<T> read
//!   g: array<CH> read
//!   b: array<T> read
//!   y: array<T> read_write

{{include matvec_chunks}}

const MR: u32 = {{MR}}u;
/** Elements in a chunk; the threads of rmsnorm_forward's row workgroup. */
const CE: u32 = {{CE}}u;
const NORM_WG: u32 = 64u;
const T_IS_F16: bool = {{T_IS_F16}};
{{include round_to_t}}

var<workgroup> norm_partial: array<f32, NORM_WG>;
var<workgroup> norm_r: array<f32, MR>;

/** Element i of x, in f32. */
fn x_elem(i: u32) -> f32 {
{{X_ELEM}}
}

/** A chunk of x normalized: T(g * T(x * r)) per element, as rmsnorm_forward rounds (round_to_t). */
fn norm_chunk(xc: CH, gc: CH, r: f32) -> CH {
{{NORM_CHUNK}}
}

/** Element i of h (the adapters' x A^T): in r, or in w1 for the add epilogue. */
fn h_elem(i: u32) -> f32 {
  if (p.epi == 1u) {
{{H_ELEM_W1}}
  }
  return f32(r[i]);
}

{{include matvec_fused_lora}}

/** Chunk i of weight `part` (the part is the same for a whole subgroup's row). */
fn load_w(part: u32, i: u32) -> CH {
  if (part == 0u) { return w0[i]; }
  if (part == 1u) { return w1[i]; }
  return w2[i];
}

@compute @workgroup_size(SG * G)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(local_invocation_index) li: u32) {
  // No early return past N: subgroupAdd needs uniform control flow, and n0 varies with the subgroup.
  let n0 = ((wid.x + wid.y * nwg.x) * G + li / SG) * ROWS;
  var parts: array<u32, ROWS>;
  var locals: array<u32, ROWS>;
  var rows: array<u32, ROWS>;
  var rows_up: array<u32, ROWS>;
  for (var i = 0u; i < ROWS; i++) {
    let n = min(n0 + i, p.N - 1u);
    if (p.epi == 0u && n >= p.n2) {
      parts[i] = 2u;
      locals[i] = n - p.n2;
      rows[i] = p.w2_offset + (n - p.n2) * p.K;
    } else if (p.epi == 0u && n >= p.n1) {
      parts[i] = 1u;
      locals[i] = n - p.n1;
      rows[i] = p.w1_offset + (n - p.n1) * p.K;
    } else {
      parts[i] = 0u;
      locals[i] = n;
      rows[i] = p.w0_offset + n * p.K;
    }
    rows_up[i] = p.w1_offset + n * p.K;
  }
  {{include matvec_fused_norm}}
  var sums: array<f32, ROWS * MR>;
  var sums_up: array<f32, ROWS * MR>;
  for (var c0 = 0u; c0 < p.K; c0 += SG * U) {
    for (var j = 0u; j < U; j++) {
      let c = c0 + lane + j * SG;
      if (c < p.K) {
        var xs: array<CH, MR>;
        for (var m = 0u; m < MR; m++) {
          xs[m] = x[p.x_offset + m * p.x_row + c];
          if (p.norm != 0u) { xs[m] = norm_chunk(xs[m], g[c], norm_r[m]); }
        }
        for (var i = 0u; i < ROWS; i++) {
          var wc: CH;
          if (p.epi == 0u) { wc = load_w(parts[i], rows[i] + c); } else { wc = w0[rows[i] + c]; }
          for (var m = 0u; m < MR; m++) { sums[i * MR + m] += chunk_dot(xs[m], wc); }
          if (p.epi == 2u) {
            let uc = w1[rows_up[i] + c];
            for (var m = 0u; m < MR; m++) { sums_up[i * MR + m] += chunk_dot(xs[m], uc); }
          }
        }
      }
    }
  }
  {{include matvec_fused_store}}
}
