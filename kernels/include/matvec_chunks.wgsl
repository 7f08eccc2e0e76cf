/// Shared by the matrix-vector kernels that read x and w in 16-byte chunks (matvec.v3, matvec_fused): their
/// layout constants (workgroups of G subgroups of SG lanes, ROWS rows a subgroup, U chunks of a row a lane
/// per pass) and the dot product of two chunks (CH and CHUNK_DOT generated per dtype on the host).
const SG: u32 = {{SG}}u;
const ROWS: u32 = {{ROWS}}u;
const U: u32 = {{U}}u;
const G: u32 = {{G}}u;

/** The dot product of one 16-byte chunk of x with one of w, in f32. */
fn chunk_dot(xc: CH, wc: CH) -> f32 {
{{CHUNK_DOT}}
}
