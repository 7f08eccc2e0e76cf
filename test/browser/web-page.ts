// The page's side of the web app tests: the app built and served from 127.0.0.1 to headless Chromium,
// and the page driven as a user does.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
