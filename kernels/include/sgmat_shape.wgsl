/// Shared by the subgroup-matrix kernels: the constants of their shape (kernelgen/matmul.ts shapeDefines):
/// matrices SM x SN x SK, subgroups of SG lanes, workgroup tile TM x TN, subgroup tile WM x WN, k step BK.
const SG: u32 = {{SG}}u;
const SM: u32 = {{SM}}u;
const SN: u32 = {{SN}}u;
const SK: u32 = {{SK}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WM: u32 = {{WM}}u;
const WN: u32 = {{WN}}u;
const BK: u32 = {{BK}}u;
