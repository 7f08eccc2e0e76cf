// Batched matmul, v4 (shaped for GPUs): c[b, m, n] = sum_k a[b, m, k] * b[b, k, n], f32 accumulation.
// 256 threads (16 x 16) per TILE x TILE block of c; each thread holds a TT x TT register block (TT = TILE / 16:
// 8 at TILE 128, 4 at TILE 64) as vec4 accumulators. Per step a TILE x 16 slice of a and a 16 x TILE slice
// of b are staged in workgroup memory as f32 (f16 data converts on load), k-major so each thread reads its
// rows and columns as vec4s: 2 TT values feed TT * TT FMAs. Global loads read any strides in place; the
// threads walk the operand's contiguous dimension (a_walk_k: a along k, else along m; b_walk_n: b along n,
// else along k) so neighbouring lanes read neighbouring addresses. Out-of-range elements stage as zero.
// Bindings: 0 Params (uniform, element strides); 1 a: array<T> read; 2 b: array<T> read;
// 3 c: array<T> read_write (contiguous). Grid (ceil(N / TILE), ceil(M / TILE), batch).
alias T = f32;

//! params from matmul_strided
//! bindings
//!   a: array<T> read
//!   b: array<T> read
//!   c: array<T> read_write

const TILE: u32 = {{TILE}}u;
const BK: u32 = 16u;
const TT: u32 = TILE / 16u;
const TV: u32 = TT / 4u;
const LOADS: u32 = TILE * BK / 256u;

var<workgroup> ta: array<vec4<f32>, BK * TILE / 4u>;
var<workgroup> tb: array<vec4<f32>, BK * TILE / 4u>;

{{include matmul_elements}}

// Where thread slot e of a staging step lands in a BK x TILE slice, as (k, other): walking k (consecutive
// slots step along k) or the other dimension.
fn stage_at(e: u32, walk_k: bool) -> vec2<u32> {
  return select(vec2<u32>(e / TILE, e % TILE), vec2<u32>(e % BK, e / BK), walk_k);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  let bases = operand_bases(wid.z); // a, b
  var acc: array<vec4<f32>, TT * TV>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var t = 0u; t < LOADS; t++) {
      let e = li + t * 256u;
      let sa = stage_at(e, p.a_walk_k != 0u); // (k, m)
      let ia = sa.x * TILE + sa.y;
      ta[ia / 4u][ia % 4u] = a_at(bases.x, m0 + sa.y, k0 + sa.x);
      let sb = stage_at(e, p.b_walk_n == 0u); // (k, n)
      let ib = sb.x * TILE + sb.y;
      tb[ib / 4u][ib % 4u] = b_at(bases.y, k0 + sb.x, n0 + sb.y);
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      var av: array<vec4<f32>, TV>;
      var bv: array<vec4<f32>, TV>;
      for (var v = 0u; v < TV; v++) {
        av[v] = ta[(k * TILE + lid.y * TT) / 4u + v];
        bv[v] = tb[(k * TILE + lid.x * TT) / 4u + v];
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
    let row = m0 + lid.y * TT + i;
    if (row < p.M) {
      for (var j = 0u; j < TT; j++) {
        let col = n0 + lid.x * TT + j;
        if (col < p.N) { c[c_base + row * p.N + col] = T(acc[i * TV + j / 4u][j % 4u]); }
      }
    }
  }
}
