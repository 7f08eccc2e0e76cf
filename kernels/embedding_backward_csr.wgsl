// Embedding backward by rows grouped on the host (CSR): for each unique id u[k],
// dtable[u[k], c] = sum_{q in offsets[k] .. offsets[k+1]} dy[positions[q], c], in ascending position
// order (deterministic, no atomics). Rows of dtable not named in u are left as they are (zeros).
// Bindings: 0 Params (uniform); 1 dy: array<T> read ([N, C]); 2 uniq: array<i32> read ([U]);
// 3 offsets: array<i32> read ([U + 1]); 4 positions: array<i32> read ([N]); 5 dtable: array<T> read_write ([V, C]).
// Workgroup: 64 threads per unique id, strided over C; one workgroup per unique id, 2-D grid beyond 65535.
alias T = f32;

//! params
//!   rows: u32  // U, the unique ids
//!   C: u32
//! bindings
//!   dy: array<T> read
//!   uniq: array<i32> read
//!   offsets: array<i32> read
//!   positions: array<i32> read
//!   dtable: array<T> read_write

{{include row_workgroup}}

// Row k of the work is unique id uniq[k].
fn row_main(k: u32, base: u32, lid: u32) {
  let row = u32(uniq[k]) * p.C;
  let first = u32(offsets[k]);
  let last = u32(offsets[k + 1u]);
  for (var c = lid; c < p.C; c += WG) {
    var acc = 0.0;
    for (var q = first; q < last; q++) { acc += f32(dy[u32(positions[q]) * p.C + c]); }
    dtable[row + c] = T(acc);
  }
}
