// Batched matmul, v3 (subgroup sharing): c[b, m, n] = sum_k a[b, m, k] * b[b, k, n], f32 accumulation.
// One subgroup per workgroup (workgroup size SG = the adapter's subgroup size, fixed per variant), no
// workgroup memory and no barriers. Each lane owns one vec4 of C columns over TM rows (TM / SG rows of A
// per lane). Per 4 steps of k, lane l loads vec4s of A rows (l, l + SG, ...) along k and the others read
// them through subgroupShuffle, so every A element is loaded once per workgroup.
// Layout (checked on the host): a rows contiguous along k (a_sk = 1), K, row and batch strides multiples
// of 4; b either rows along n (BT = false: b_sn = 1, N multiple of 4) or stored transposed (BT = true:
// b_sk = 1, [N, K] rows along k), or packed in column panels (PACKED = true, from matmul_pack: panel
// j holds b's 4 SG columns of this workgroup for every k, contiguous; b_row is ignored). c is contiguous
// with N a multiple of 4. Edge rows beyond M and vec4 columns beyond N are clamped on load (packed
// panels are zero-padded) and skipped on store (the whole subgroup stays converged).
// The SHARE placeholder is the sharing step unrolled on the host (shareStep in kernelgen/matmul.ts): subgroupBroadcast
// takes only constant lane indices, and accumulators indexed by loop counters spill out of registers.
// Bindings: 0 Params (uniform, strides and offsets in vec4 units); 1 a: array<vec4<T>> read;
// 2 b: array<vec4<T>> read; 3 c: array<vec4<T>> read_write; 4 bias: array<T> read
// (include/matmul_bias.wgsl, bias_offset in elements); 5 addend: array<T> read (include/matmul_addend.wgsl,
// addend_offset in elements).
// Grid (ceil(N / (4 SG)), ceil(M / TM), batch); PACKED: (ceil(M / TM), ceil(N / (4 SG)), batch).
enable subgroups;
alias T = f32;

//! params
//!   M: u32
//!   N: u32
//!   K: u32
//!   batch_rank: u32
//!   a_offset: u32
//!   b_offset: u32
//!   a_sm: u32
//!   b_row: u32
//!   bias_offset: u32
//!   addend_offset: u32
//!   alpha: f32
//!   batch_shape: vec4<u32>
//!   a_batch_strides: vec4<u32>
//!   b_batch_strides: vec4<u32>
//! bindings
//!   a: array<vec4<T>> read
//!   b: array<vec4<T>> read
//!   c: array<vec4<T>> read_write
//!   bias: array<T> read
//!   addend: array<T> read

const SG: u32 = {{SG}}u;
const TM: u32 = {{TM}}u;
const BT: bool = {{BT}};
const PACKED: bool = {{PACKED}};

{{include batch_bases}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let N4 = p.N / 4u;
  let K4 = p.K / 4u;
  // PACKED: row blocks vary fastest, so consecutive workgroups reuse one panel of b from the cache.
  let panel = select(wid.x, wid.y, PACKED);
  let n4 = panel * SG + lane;
  let nl = min(n4, N4 - 1u);
  let m0 = select(wid.y, wid.x, PACKED) * TM;
  let bases = batch_bases(wid.z, vec2<u32>(p.a_offset, p.b_offset), p.a_batch_strides, p.b_batch_strides);
  var a_base = bases.x;
  var b_base = bases.y;
  var a_rows: array<u32, TM / SG>;
  for (var i = 0u; i < TM / SG; i++) {
    a_rows[i] = a_base + min(m0 + i * SG + lane, p.M - 1u) * p.a_sm;
  }
  var acc: array<vec4<f32>, TM>;
  for (var k4 = 0u; k4 < K4; k4++) {
    var b0: vec4<f32>;
    var b1: vec4<f32>;
    var b2: vec4<f32>;
    var b3: vec4<f32>;
    if (PACKED) {
      let base = b_base + (panel * p.K + k4 * 4u) * SG + lane;
      b0 = vec4<f32>(b[base]);
      b1 = vec4<f32>(b[base + SG]);
      b2 = vec4<f32>(b[base + 2u * SG]);
      b3 = vec4<f32>(b[base + 3u * SG]);
    } else if (BT) {
      let base = b_base + nl * 4u * p.b_row + k4;
      let t0 = vec4<f32>(b[base]);
      let t1 = vec4<f32>(b[base + p.b_row]);
      let t2 = vec4<f32>(b[base + 2u * p.b_row]);
      let t3 = vec4<f32>(b[base + 3u * p.b_row]);
      b0 = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
      b1 = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
      b2 = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
      b3 = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
    } else {
      let base = b_base + k4 * 4u * p.b_row + nl;
      b0 = vec4<f32>(b[base]);
      b1 = vec4<f32>(b[base + p.b_row]);
      b2 = vec4<f32>(b[base + 2u * p.b_row]);
      b3 = vec4<f32>(b[base + 3u * p.b_row]);
    }
    // SHARE: for each i < TM / SG, av = this lane's vec4 of row a_rows[i]; for each lane j (a constant, as
    // subgroupBroadcast needs), acc[i * SG + j] += (av from lane j) times [b0; b1; b2; b3].
{{SHARE}}
  }
  if (n4 < N4) {
    let c_base = wid.z * p.M * N4 + n4;
    for (var r = 0u; r < TM; r++) {
      let row = m0 + r;
      if (row < p.M) {
        c[c_base + row * N4] = vec4<T>(epilogue4(acc[r], n4 * 4u, (c_base + row * N4) * 4u));
      }
    }
  }
}
