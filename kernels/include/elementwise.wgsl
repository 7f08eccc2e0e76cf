// One thread per element i < numel, 256 to a workgroup, the grid 2-D beyond 65535 workgroups: main
// calls the kernel's element(i).
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.numel) { element(i); }
}
