// Shared by the v1 attention kernels that give each thread a query row (forward, dq): the row a
// thread owns (ROWS threads a workgroup), and the K and V tiles of up to BK keys (BK D4 <= CAP4 vec4)
// its workgroup shares.
const ROWS: u32 = 16u;
const CAP4: u32 = 512u;

var<workgroup> k_tile: array<vec4<f32>, CAP4>;
var<workgroup> v_tile: array<vec4<f32>, CAP4>;

// A thread's query row i of head bh (batch b); ok when i < T; base and kv_base: the first element of
// its row and of its kv head.
struct QueryRow {
  bh: u32,
  b: u32,
  i: u32,
  ok: bool,
  base: u32,
  kv_base: u32,
}

fn query_row(wid: vec3<u32>, lid: u32) -> QueryRow {
  let bh = wid.y;
  let i = wid.x * ROWS + lid;
  return QueryRow(bh, bh / p.Hq, i, i < p.T, (bh * p.T + i) * p.D, kv_head_of(bh) * p.S * p.D);
}

// Loads keys j0 .. j0 + nk - 1 (nk = min(BK, s_end - j0)) of the kv head at kv_base into the tiles
// and returns nk. Every thread of the workgroup calls it.
fn load_kv_tiles(kv_base: u32, j0: u32, s_end: u32, lid: u32) -> u32 {
  let nk = min(p.BK, s_end - j0);
  workgroupBarrier();
  for (var x = lid; x < nk * p.D4; x += ROWS) {
    let row = kv_base + (j0 + x / p.D4) * p.D;
    let e = row + 4u * (x % p.D4);
    k_tile[x] = load_k(e, row + p.D);
    v_tile[x] = load_v(e, row + p.D);
  }
  workgroupBarrier();
  return nk;
}
