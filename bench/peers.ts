// Peers on the same adapter, each through its own public API (compute, then read back a few values):
// @tensorflow/tfjs-backend-webgpu (with the @tensorflow/tfjs bundle for gradients) and @jax-js/jax
// (webgpu backend). Both are loaded after `navigator.gpu` is set from the `webgpu` package.
import { create, globals } from 'webgpu';
import { timeMedian } from './timing.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

export interface Peer {
  name: string;
  matmul(M: number, K: number, N: number, reps: number): Promise<number>;
  softmax(R: number, C: number, reps: number): Promise<number>;
  /** y = x W, loss = sum(y), dW; null where the peer has no gradients. */
  trainStep(M: number, K: number, N: number, reps: number): Promise<number | null>;
}

function setNavigator(): void {
  const g = globalThis as Any;
  if (typeof g.GPUBufferUsage === 'undefined') Object.assign(g, globals);
  if (!g.navigator?.gpu) {
    Object.defineProperty(g, 'navigator', {
      value: { gpu: create([]), userAgent: 'Node.js', language: 'en-US' },
      configurable: true,
      writable: true,
    });
  }
}

const rand = (n: number, seed: number) => {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
};

export async function loadTfjs(): Promise<Peer | null> {
  setNavigator();
  const tf: Any = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) return null;
  await tf.ready();
  const few = async (t: Any) => {
    const s = tf.slice(tf.reshape(t, [-1]), 0, 4);
    await s.data();
    s.dispose();
  };
  return {
    name: 'tfjs-webgpu',
    async matmul(M, K, N, reps) {
      const a = tf.tensor2d(rand(M * K, 1), [M, K]);
      const b = tf.tensor2d(rand(K * N, 2), [K, N]);
      const ms = await timeMedian(async () => {
        const c = tf.matMul(a, b);
        await few(c);
        c.dispose();
      }, reps);
      a.dispose();
      b.dispose();
      return ms;
    },
    async softmax(R, C, reps) {
      const x = tf.tensor2d(rand(R * C, 3), [R, C]);
      const ms = await timeMedian(async () => {
        const y = tf.softmax(x);
        await few(y);
        y.dispose();
      }, reps);
      x.dispose();
      return ms;
    },
    async trainStep(M, K, N, reps) {
      const x = tf.tensor2d(rand(M * K, 1), [M, K]);
      const w = tf.tensor2d(rand(K * N, 2), [K, N]);
      const g = tf.grad((wv: Any) => tf.sum(tf.matMul(x, wv)));
      const ms = await timeMedian(async () => {
        const dw = g(w);
        await few(dw);
        dw.dispose();
      }, reps);
      x.dispose();
      w.dispose();
      return ms;
    },
  };
}

export async function loadJax(): Promise<Peer | null> {
  setNavigator();
  const jax: Any = await import('@jax-js/jax');
  const devices: string[] = await jax.init();
  if (!devices.includes('webgpu')) return null;
  jax.defaultDevice('webgpu');
  const np = jax.numpy;
  const few = async (t: Any) => {
    await t.blockUntilReady();
    const s = t.slice(0, [0, 4]);
    await s.data();
  };
  return {
    name: 'jax-js',
    async matmul(M, K, N, reps) {
      const a = np.array(rand(M * K, 1), { shape: [M, K] });
      const b = np.array(rand(K * N, 2), { shape: [K, N] });
      const ms = await timeMedian(async () => {
        const c = np.matmul(a.ref, b.ref);
        await few(c);
      }, reps);
      a.dispose();
      b.dispose();
      return ms;
    },
    async softmax(R, C, reps) {
      const x = np.array(rand(R * C, 3), { shape: [R, C] });
      const ms = await timeMedian(async () => {
        const y = jax.nn.softmax(x.ref, -1);
        await few(y);
      }, reps);
      x.dispose();
      return ms;
    },
    async trainStep(M, K, N, reps) {
      const x = np.array(rand(M * K, 1), { shape: [M, K] });
      const w = np.array(rand(K * N, 2), { shape: [K, N] });
      const g = jax.grad((wv: Any) => np.sum(np.matmul(x.ref, wv)));
      const ms = await timeMedian(async () => {
        const dw = g(w.ref);
        await few(dw);
      }, reps);
      x.dispose();
      w.dispose();
      return ms;
    },
  };
}
