// One workgroup of WG = 64 threads per row of a contiguous [rows, C] tensor (a 2-D grid beyond 65535
// rows), with the workgroup reductions. The kernel defines row_main(row, base, lid): its row, the
// row's first element and the thread's index, which strides over C by WG.
const WG: u32 = 64u;
{{include workgroup_reduce}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row < p.rows) { row_main(row, row * p.C, lid); }
}
