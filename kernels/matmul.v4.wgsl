// Batched matmul, v4 (shaped for GPUs): c[b, m, n] = sum_k a[b, m, k] * b[b, k, n], f32 accumulation.
// 256 threads (16 x 16) per TILE x TILE block of c; each thread holds a TT x TT register block (TT = TILE / 16:
// 8 at TILE 128, 4 at TILE 64) as vec4 accumulators, in runs of 4 rows and 4 columns 64 apart (thread (x, y)
// owns rows 4y.., 64 + 4y.. and columns 4x.., 64 + 4x..), so that neighbouring threads read neighbouring
// vec4s of workgroup memory. Per step a TILE x 16 slice of a and a 16 x TILE slice
// of b are staged in workgroup memory as f32 (f16 data converts on staging), k-major so each thread reads
// its rows and columns as vec4s: 2 TT values feed TT * TT FMAs. The threads load each slice along the
// operand's contiguous dimension (coalesced), as vec4s where the host found the runs aligned (V = 4), into
// registers: the next slice is read from global memory while the current one is multiplied. Out-of-range
// elements stage as zero. The LOAD and STAGE placeholders are generated on the host (kernelgen/matmul.ts).
// Bindings: 0 Params (uniform, element strides); 1 a: array<AV> read; 2 b: array<AV> read (AV: T, or
// vec4<T> when V = 4); 3 c: array<TC> read_write (contiguous); 4 bias: array<T> read (include/matmul_bias.wgsl); 5 addend: array<T> read (include/matmul_addend.wgsl). Grid (ceil(N / TILE), ceil(M / TILE), batch).
alias T = f32;
// The type of c: T, or f32 for the partial sums of a product split along k (ops/matmul split).
alias TC = T;
alias AV = {{AV}};

//! params from matmul_strided
//! bindings
//!   a: array<AV> read
//!   b: array<AV> read
//!   c: array<TC> read_write
//!   bias: array<T> read
//!   addend: array<T> read

const TILE: u32 = {{TILE}}u;
const BK: u32 = 16u;
const TT: u32 = TILE / 16u;
const TV: u32 = TT / 4u;
// Staged rows of TILE + 4 elements: whole vec4s, and rows 4 banks apart for the stores along k.
const LD: u32 = {{LD}}u;

var<workgroup> ta: array<vec4<f32>, BK * LD / 4u>;
var<workgroup> tb: array<vec4<f32>, BK * LD / 4u>;

{{include batch_bases}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  let bases = batch_bases(wid.z, vec2<u32>(p.a_offset, p.b_offset), p.a_batch_strides, p.b_batch_strides);
  let a_base = bases.x;
  let b_base = bases.y;
  var ra: array<AV, {{A_LOADS}}>;
  var rb: array<AV, {{B_LOADS}}>;
  var acc: array<vec4<f32>, TT * TV>;
  var k0 = 0u;
{{LOAD}}
  loop {
    if (k0 >= p.K) { break; }
{{STAGE}}
    workgroupBarrier();
    k0 += BK;
{{LOAD}}
    for (var k = 0u; k < BK; k++) {
      var av: array<vec4<f32>, TV>;
      var bv: array<vec4<f32>, TV>;
      for (var v = 0u; v < TV; v++) {
        av[v] = ta[k * LD / 4u + v * 16u + lid.y];
        bv[v] = tb[k * LD / 4u + v * 16u + lid.x];
      }
      for (var i = 0u; i < TT; i++) {
        let ai = vec4<f32>(av[i / 4u][i % 4u]);
        for (var v = 0u; v < TV; v++) {
          acc[i * TV + v] = fma(ai, bv[v], acc[i * TV + v]);
        }
      }
    }
    workgroupBarrier();
  }
  let c_base = wid.z * p.M * p.N;
  for (var i = 0u; i < TT; i++) {
    let row = m0 + (i / 4u) * 64u + lid.y * 4u + i % 4u;
    if (row < p.M) {
      for (var j = 0u; j < TT; j++) {
        let col = n0 + (j / 4u) * 64u + lid.x * 4u + j % 4u;
        if (col < p.N) { c[c_base + row * p.N + col] = TC(epilogue(acc[i * TV + j / 4u][j % 4u], col, c_base + row * p.N + col)); }
      }
    }
  }
}
