// A thread per part k of each of the B Hq query rows r (the kernel's parts(): splits of the keys,
// vec4 columns, or query positions), WG threads to a workgroup and a 2-D grid beyond 65535
// workgroups: main calls the kernel's part(r, k).
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t < p.B * p.Hq * parts()) { part(t / parts(), t % parts()); }
}
