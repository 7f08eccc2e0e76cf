/// Shared by the subgroup-matrix kernels (matmul_sgmat, matmul_sgmat_direct), first in each: the extension
/// they need, and the type of their operands (T) and of c (TC).
enable chromium_experimental_subgroup_matrix;
// Each subgroup loads and stores its own matrices at offsets derived from its index in the workgroup:
// uniform within the subgroup, which is what the builtins need, but not across the workgroup.
diagnostic(off, chromium.subgroup_matrix_uniformity);
alias T = f32;
// The type of c: T, or f32 for the partial sums of a product split along k (ops/matmul split).
alias TC = T;
