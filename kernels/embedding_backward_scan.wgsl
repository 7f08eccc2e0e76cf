// Embedding backward for ids that live only on the GPU: one workgroup per table row v reads the ids
// once, in chunks of CHUNK, gathering the positions n with ids[n] == v in token order into workgroup
// memory, then sums those rows of dy over the columns in that order (deterministic, no atomics):
// dtable[v, c] = sum_{n : ids[n] == v} dy[n, c]. Costs V * N id comparisons and N * C additions.
// Bindings: 0 Params (uniform); 1 dy: array<T> read ([N, C]); 2 ids: array<i32> read ([N]);
// 3 dtable: array<T> read_write ([V, C]).
// Workgroup: 64 threads per table row; one workgroup per row, 2-D grid beyond 65535. A row whose
// positions outgrow the list is summed in parts through dtable (in f32 the same result; in f16
// rounded once per CHUNK-sized part).
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

// Each thread scans SEG consecutive ids of a chunk, so a chunk's matches come out in token order.
const SEG: u32 = 16u;
const CHUNK: u32 = WG * SEG;
const CAP: u32 = 2u * CHUNK;
var<workgroup> positions: array<u32, CAP>;
var<workgroup> seg_start: array<u32, WG>;
var<workgroup> found: u32;

// Adds dy's rows at positions[0 .. count) to dtable row `base` (onto what is there when `keep`).
fn flush(base: u32, lid: u32, count: u32, keep: bool) {
  for (var c = lid; c < p.C; c += WG) {
    var acc = 0.0;
    if (keep) { acc = f32(dtable[base + c]); }
    for (var q = 0u; q < count; q++) { acc += f32(dy[positions[q] * p.C + c]); }
    dtable[base + c] = T(acc);
  }
}

fn row_main(v: u32, base: u32, lid: u32) {
  if (lid == 0u) { found = 0u; }
  var flushed = false;
  for (var start = 0u; start < p.N; start += CHUNK) {
    let first = start + lid * SEG;
    let last = min(first + SEG, p.N);
    var mask = 0u;
    var count = 0u;
    for (var n = first; n < last; n++) {
      if (ids[n] == i32(v)) { mask |= 1u << (n - first); count++; }
    }
    seg_start[lid] = count;
    workgroupBarrier();
    if (lid == 0u) {
      var offset = found;
      for (var t = 0u; t < WG; t++) { let m = seg_start[t]; seg_start[t] = offset; offset += m; }
      found = offset;
    }
    workgroupBarrier();
    var at = seg_start[lid];
    for (var k = 0u; k < SEG; k++) {
      if ((mask & (1u << k)) != 0u) { positions[at] = first + k; at++; }
    }
    // A full list is summed now so the next chunk fits.
    let total = workgroupUniformLoad(&found);
    if (total > CAP - CHUNK) {
      flush(base, lid, total, flushed);
      flushed = true;
      workgroupBarrier();
      if (lid == 0u) { found = 0u; }
    }
  }
  let total = workgroupUniformLoad(&found);
  flush(base, lid, total, flushed);
}
