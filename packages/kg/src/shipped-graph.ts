// The graph shipped with the package (data/graph.jsonl), located relative to
// this module so it is found from src/ and from dist/ alike. Node only.

import { fileURLToPath } from 'node:url';
import type { LoadedGraph } from './graph.js';
import { loadGraph } from './graph.js';

/**
 * Absolute path of the shipped CMeKG-shaped graph.
 * @example shippedGraphPath() // '/…/node_modules/@huatuo/kg/data/graph.jsonl'
 */
export function shippedGraphPath(): string {
  return fileURLToPath(new URL('../data/graph.jsonl', import.meta.url));
}

/**
 * Load the shipped graph (diseases, drugs and symptoms written for this package).
 * @example const { entities } = await loadShippedGraph();
 */
export function loadShippedGraph(): Promise<LoadedGraph> {
  return loadGraph(shippedGraphPath());
}
