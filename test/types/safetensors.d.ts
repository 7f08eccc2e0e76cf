// The npm `safetensors` package (a whole-buffer reader used as a cross-check) ships no types.
declare module 'safetensors' {
  const safetensors: Record<string, unknown>;
  export = safetensors;
}
