// Attention backward, first step: delta[r] = sum_d dO[r, d] * O[r, d] for each query row r of
// [B, Hq, T], stored beside the forward's logsumexp as stats[2r] = lse[r], stats[2r + 1] = delta[r].
// (delta_i equals sum_j P_ij dP_ij, the softmax backward's row term.)
// Bindings: 0 Params (uniform); 1 o, 2 d_o [B, Hq, T, D]: T read; 3 lse [B, Hq, T]: f32 read;
// 4 stats [B, Hq, T, 2]: f32 read_write.
// Workgroup: 64 threads, one row each; 2-D grid beyond 65535 workgroups. Accumulates in f32.
alias T = f32;

//! params from attention
//! bindings
//!   o: array<{{ELEM}}> read
//!   d_o: array<{{ELEM}}> read
//!   lse: array<f32> read
//!   stats: array<f32> read_write

{{include attention_v1}}

const WG: u32 = 64u;
{{include attention_parts}}

// A thread per query position i of head bh: row r of [B, Hq, T].
fn parts() -> u32 { return p.T; }

fn part(bh: u32, i: u32) {
  let r = bh * p.T + i;
  let base = r * p.D;
  var acc = 0.0;
  for (var c = 0u; c < p.D4; c++) {
    acc += dot(load_o(base + 4u * c, base + p.D), load_d_o(base + 4u * c, base + p.D));
  }
  stats[2u * r] = lse[r];
  stats[2u * r + 1u] = acc;
}
