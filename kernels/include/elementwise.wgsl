// A grid-stride loop over the elements i < numel, 256 threads to a workgroup, the grid 2-D beyond
// 65535 workgroups: thread t handles t, t + threads, t + 2 * threads, ... (threads = every thread of
// the grid), so the host may launch fewer workgroups than elements / 256. main calls element(i).
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let threads = nwg.x * nwg.y * 256u;
  for (var i = gid.x + gid.y * nwg.x * 256u; i < p.numel; i += threads) { element(i); }
}
