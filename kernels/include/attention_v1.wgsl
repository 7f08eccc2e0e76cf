// Shared by the v1 attention kernels (rows of D in private arrays of DMAX4 vec4): the variant's loaders
// and storers, generated per dtype and head dim in kernelgen/attention.ts. load_NAME(e, end) reads four
// elements from element e of a row ending at `end` (zeros past it); store_NAME(e, end, x) writes them.
const DMAX4: u32 = {{DMAX4}}u;
{{IO}}
