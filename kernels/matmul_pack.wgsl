// Packs b of a product into column panels for matmul v3 (PACKED): p[j, k, c] = b[k, j * 4 SG + c] for
// panel j < ceil(N / (4 SG)), k < K, c < 4 SG, zero past N. A v3 workgroup then streams its panel as one
// contiguous run (4 SG values per k) instead of reading 4 SG values every N elements of row-major b,
// which on CPU adapters leaves the caches and TLB behind once K x N is large.
// b is read through its strides (any layout, e.g. a linear layer's weight stored transposed).
// Bindings: 0 Params (uniform, element units); 1 b: array<T> read; 2 p: array<vec4<T>> read_write.
// One thread per vec4 of p; workgroup 64; grid grid1d(panels * K * SG, 64) (i = gid.x + gid.y * nwg.x * 64).
alias T = f32;

//! params
//!   N: u32
//!   K: u32
//!   b_offset: u32
//!   b_sk: u32
//!   b_sn: u32
//!   total: u32
//! bindings
//!   b: array<T> read
//!   packed: array<vec4<T>> read_write

const SG: u32 = {{SG}}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.total) { return; }
  let c4 = i % SG;
  let k = (i / SG) % p.K;
  let j = i / (SG * p.K);
  let n = (j * SG + c4) * 4u;
  let base = p.b_offset + k * p.b_sk + n * p.b_sn;
  var v = vec4<T>(T(0.0));
  if (n < p.N) { v.x = b[base]; }
  if (n + 1u < p.N) { v.y = b[base + p.b_sn]; }
  if (n + 2u < p.N) { v.z = b[base + 2u * p.b_sn]; }
  if (n + 3u < p.N) { v.w = b[base + 3u * p.b_sn]; }
  packed[i] = v;
}
