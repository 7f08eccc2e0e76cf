// The page's side of the web app tests: the app built and served from 127.0.0.1 to headless Chromium,
// and the page driven as a user does.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { buildWeb, serveWeb } from '../../apps/web/scripts/serve.js';

export const CHROMIUM = '/usr/bin/chromium';
/** A test option: skipped, saying why, on a machine without Debian's chromium. */
export const SKIP_WITHOUT_CHROMIUM: false | string = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing; install Debian's chromium to run the browser test`;
export const CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-quic'];

/** The web app built into a fresh folder, served, and a headless Chromium to open it in. */
export interface ServedApp {
  /** The fresh folder: the built site is in its `site`, and tests may write beside it. */
  work: string;
  url: string;
  browser: Browser;
  /** Closes the browser and the server and removes the folder. */
  close(): Promise<void>;
}

/** Builds the web app into a fresh folder named from `prefix`, serves it and launches headless Chromium. */
export async function serveApp(prefix: string): Promise<ServedApp> {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const site = join(work, 'site');
  await buildWeb({ outDir: site });
  const server = await serveWeb({ port: 0, root: site });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  return {
    work,
    url: server.url,
    browser,
    close: async () => {
      await browser.close();
      await server.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A bundled script opened as a module page in headless Chromium: its tab, the page's uncaught errors, and its closing. */
export interface ScriptPage {
  tab: Page;
  errors: string[];
  /** Closes Chromium and the server and removes the browser profile. */
  close(): Promise<void>;
}

/**
 * Serves `code` (a browser bundle) from 127.0.0.1 as the module script of a page titled `title` (about:blank has no
 * navigator.gpu), opens it in headless Chromium with a fresh profile named from `profilePrefix` (so IndexedDB starts
 * empty), and waits until the page defines `globalThis[ready]`.
 */
export async function openScriptPage(code: string, title: string, profilePrefix: string, ready: string): Promise<ScriptPage> {
  const html = `<!doctype html><meta charset="utf-8"><title>${title}</title><script type="module" src="/entry.js"></script>`;
  const server = createServer((req, res) => {
    if (req.url === '/entry.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(code);
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const profile = mkdtempSync(join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const close = async (): Promise<void> => {
    await context.close();
    await new Promise((resolve) => server.close(resolve));
    rmSync(profile, { recursive: true, force: true });
  };
  try {
    const tab = await context.newPage();
    const errors: string[] = [];
    tab.on('pageerror', (e) => errors.push(e.message));
    await tab.goto(`http://127.0.0.1:${port}/`);
    await tab.waitForFunction((name) => typeof (globalThis as Record<string, unknown>)[name] === 'function', ready, { timeout: 30_000 });
    return { tab, errors, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Opens the app at `url` in a new page of `owner` and waits until it has a device; `beforeLoad` runs
 * first (listeners that must see the load). The page's uncaught errors collect in `errors`.
 */
export async function openApp(owner: Browser | BrowserContext, url: string, beforeLoad?: (page: Page) => void): Promise<{ page: Page; errors: string[] }> {
  const page = await owner.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  beforeLoad?.(page);
  await page.goto(url);
  await page.waitForSelector('#device.ok', { timeout: 60_000 });
  return { page, errors };
}

/** Asks `question` in the page, greedily for `maxTokens`; the adapted answer is null where the page has no adapter. */
export async function askPage(page: Page, question: string, maxTokens: number): Promise<{ base: string; adapted: string | null }> {
  await page.fill('#question', question);
  await page.fill('#max-tokens', String(maxTokens));
  await page.evaluate(() => {
    delete document.getElementById('answer-base')!.dataset.answer;
    delete document.getElementById('answer-adapted')!.dataset.answer;
  });
  await page.click('#ask');
  await page.waitForFunction(() => document.getElementById('answer-base')!.dataset.answer !== undefined && document.body.dataset.busy === '', null, { timeout: 120_000 });
  return { base: (await page.getAttribute('#answer-base', 'data-answer'))!, adapted: await page.getAttribute('#answer-adapted', 'data-answer') };
}
