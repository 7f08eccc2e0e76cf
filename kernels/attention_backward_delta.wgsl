// Attention backward, first step: delta[r] = sum_d dO[r, d] * O[r, d] for each query row r of
// [B, Hq, T], stored beside the forward's logsumexp as stats[2r] = lse[r], stats[2r + 1] = delta[r].
// (delta_i equals sum_j P_ij dP_ij, the softmax backward's row term.)
// Bindings: 0 Params (uniform); 1 o, 2 d_o [B, Hq, T, D]: T read; 3 lse [B, Hq, T]: f32 read;
// 4 stats [B, Hq, T, 2]: f32 read_write.
// Workgroup: 64 threads, one row each; 2-D grid beyond 65535 workgroups. Accumulates in f32.
alias T = f32;

struct Params {
  B: u32,
  Hq: u32,
  Hkv: u32,
  T: u32,
  S: u32,
  D: u32,
  D4: u32,
  BK: u32,
  causal: u32,
  has_mask: u32,
  mask_bits: u32,
  mask_offset: u32,
  scale: f32,
  kv_offset: i32,
  n_split: u32,
  split_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> o: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> d_o: array<{{ELEM}}>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

fn load_o(e: u32, end: u32) -> vec4<f32> { {{LOAD_O}} }
fn load_d_o(e: u32, end: u32) -> vec4<f32> { {{LOAD_D_O}} }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * 64u + lid;
  if (r >= p.B * p.Hq * p.T) { return; }
  let base = r * p.D;
  var acc = 0.0;
  for (var c = 0u; c < p.D4; c++) {
    acc += dot(load_o(base + 4u * c, base + p.D), load_d_o(base + 4u * c, base + p.D));
  }
  stats[2u * r] = lse[r];
  stats[2u * r + 1u] = acc;
}
