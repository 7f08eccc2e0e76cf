// Batched matmul, the naive tiled baseline: c[b, m, n] = sum_k a[b, m, k] * b[b, k, n].
// a and b are read through element strides, so transposed and broadcast operands need no copy;
// batch dims (up to 4) broadcast through their strides (0 where an operand has size 1). c is contiguous.
// Bindings: 0 Params (uniform); 1 a: array<T> read; 2 b: array<T> read; 3 c: array<TC> read_write;
// 4 bias: array<T> read (include/matmul_bias.wgsl); 5 addend: array<T> read (include/matmul_addend.wgsl).
// Workgroup: 16x16 threads, one output each, 16x16 tiles of a and b staged in workgroup memory;
// grid (ceil(N/16), ceil(M/16), batch). Accumulates in f32.
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

var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

{{include matmul_elements}}
{{include matmul_bias}}
{{include matmul_addend}}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * 16u + lid.y;
  let col = wid.x * 16u + lid.x;
  let batch = wid.z;
  let bases = operand_bases(batch); // a, b
  var acc = 0.0;
  let tiles = (p.K + 15u) / 16u;
  for (var t = 0u; t < tiles; t++) {
    let ka = t * 16u + lid.x;
    let kb = t * 16u + lid.y;
    tile_a[lid.y][lid.x] = a_at(bases.x, row, ka);
    tile_b[lid.y][lid.x] = b_at(bases.y, kb, col);
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) {
      acc = fma(tile_a[lid.y][k], tile_b[k][lid.x], acc);
    }
    workgroupBarrier();
  }
  if (row < p.M && col < p.N) {
    let i = batch * p.M * p.N + row * p.N + col;
    c[i] = TC(epilogue(acc, col, i));
  }
}
