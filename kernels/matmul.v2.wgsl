// Batched matmul, v2 (workgroup tiling + register blocking): c[b, m, n] = sum_k a[b, m, k] * b[b, k, n].
// A TILE x TILE block of c per workgroup of (TILE/4) x (TILE/4) threads, each thread a 4 x 4 block of c
// held in 4 vec4 accumulators (f32). Per step, a TILE x 16 slice of a and a 16 x TILE slice of b are
// staged in workgroup memory (as f32, k-major so the inner loop reads vec4s) from any strides, so
// transposed and broadcast operands need no copy; out-of-range elements stage as zero. Works for any
// M, N, K and needs no optional feature: the path for GPUs with fast workgroup memory and the fallback.
// Bindings: 0 Params (uniform, element strides); 1 a: array<T> read; 2 b: array<T> read;
// 3 c: array<TC> read_write (contiguous); 4 bias: array<T> read (include/matmul_bias.wgsl); 5 addend: array<T> read (include/matmul_addend.wgsl). Grid (ceil(N / TILE), ceil(M / TILE), batch).
alias T = f32;
// The type of c: T, or f32 for the partial sums of a product split along k (ops/matmul split).
alias TC = T;

//! params from matmul_strided
//! bindings
//!   a: array<T> read
//!   b: array<T> read
//!   c: array<TC> read_write
//!   bias: array<T> read
//!   addend: array<T> read

const TILE: u32 = {{TILE}}u;
const BK: u32 = 16u;
const TPR: u32 = TILE / 4u;
const WG: u32 = TPR * TPR;
const LOADS: u32 = TILE * BK / WG;

var<workgroup> ta: array<f32, BK * TILE>;
var<workgroup> tb: array<f32, BK * TILE>;

{{include matmul_elements}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(TPR, TPR)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  let bases = operand_bases(wid.z); // a, b
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var t = 0u; t < LOADS; t++) {
      let e = li + t * WG;
      // a: consecutive threads walk k (coalesced for row-major a); stored k-major.
      let ak = e % BK;
      let am = e / BK;
      ta[ak * TILE + am] = a_at(bases.x, m0 + am, k0 + ak);
      // b: consecutive threads walk n.
      let bn = e % TILE;
      let bk = e / TILE;
      tb[bk * TILE + bn] = b_at(bases.y, k0 + bk, n0 + bn);
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let ai = k * TILE + lid.y * 4u;
      let bi = k * TILE + lid.x * 4u;
      let av = vec4<f32>(ta[ai], ta[ai + 1u], ta[ai + 2u], ta[ai + 3u]);
      let bv = vec4<f32>(tb[bi], tb[bi + 1u], tb[bi + 2u], tb[bi + 3u]);
      acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
      acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
      acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
      acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
    }
    workgroupBarrier();
  }
  let c_base = wid.z * p.M * p.N;
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + lid.y * 4u + i;
    if (row < p.M) {
      for (var j = 0u; j < 4u; j++) {
        let col = n0 + lid.x * 4u + j;
        if (col < p.N) { c[c_base + row * p.N + col] = TC(epilogue(acc[i][j], col, c_base + row * p.N + col)); }
      }
    }
  }
}
