/// Shared by the subgroup-matrix kernels, the first statements of main (workgroup_id wid, local index li):
/// the workgroup's block of c from (m0, n0), its subgroup sgi (GN subgroups a row) and lane, the
/// subgroup's part from (m0 + qm, n0 + qn), and the first elements of a and b at batch index wid.z.
let m0 = wid.y * TM;
let n0 = wid.x * TN;
let sgi = li / SG;
let lane = li % SG;
let qm = (sgi / GN) * WM;
let qn = (sgi % GN) * WN;
let bases = batch_bases(wid.z, vec2<u32>(p.a_offset, p.b_offset), p.a_batch_strides, p.b_batch_strides);
let a_base = bases.x;
let b_base = bases.y;
