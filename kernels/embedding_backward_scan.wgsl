// Embedding backward for ids that live only on the GPU: one workgroup per table row v scans every
// id and sums the matching rows of dy in ascending position order (deterministic, no atomics):
// dtable[v, c] = sum_{n : ids[n] == v} dy[n, c]. Costs V * N id comparisons.
// Bindings: 0 Params (uniform); 1 dy: array<T> read ([N, C]); 2 ids: array<i32> read ([N]);
// 3 dtable: array<T> read_write ([V, C]).
// Workgroup: 64 threads per table row, strided over C; one workgroup per row, 2-D grid beyond 65535.
alias T = f32;

//! params
//!   rows: u32  // V, the table rows
//!   C: u32
//!   N: u32
//! bindings
//!   dy: array<T> read
//!   ids: array<i32> read
//!   dtable: array<T> read_write

{{include row_workgroup}}

fn row_main(v: u32, base: u32, lid: u32) {
  for (var c = lid; c < p.C; c += WG) {
    var acc = 0.0;
    for (var n = 0u; n < p.N; n++) {
      if (ids[n] == i32(v)) { acc += f32(dy[n * p.C + c]); }
    }
    dtable[base + c] = T(acc);
  }
}
