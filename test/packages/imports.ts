// The module specifiers a source file imports, for the package-seam tests: static imports and
// re-exports, side-effect imports, import() and require(), each with its line.

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])([^'"\n]+)\1/g;

/** One imported module specifier and the 1-based line it is on. */
export interface ImportSite {
  line: number;
  specifier: string;
}

/** Every module specifier `text` imports, in order. */
export function importSites(text: string): ImportSite[] {
  return [...text.matchAll(SPECIFIER)].map((m) => ({ line: text.slice(0, m.index).split('\n').length, specifier: m[2]! }));
}
