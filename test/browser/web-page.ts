// The page's side of the web app tests: driving the open page as a user does.
import type { Page } from 'playwright-core';

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
