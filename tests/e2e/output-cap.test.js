// An answer without end, in real headless Chromium against the release binary and the fake
// Ollama: the byte cap cuts it and the card says so; the wall page folds it, and "Show all"
// brings the whole answer from the API.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { manyPosts, openPage, startWall, stopWall } from './harness.js';

let ollama;
let server;
let browser;

before(async () => {
  ({ ollama, server, browser } = await startWall(manyPosts));
});

after(() => stopWall({ ollama, server, browser }));

test('an answer cut at the byte cap says so, comes folded, and Show all shows all of it', async () => {
  const context = await browser.newContext();
  const page = await openPage(context, server.url);
  // A broken upstream: it streams past num_predict, far beyond what a post keeps. Its tokens
  // are time stamps, so that each word of the answer appears once.
  const response = await page.request.post(`${server.url}/api/v1/ai/posts`, {
    data: { author_name: 'Tester', prompt: 'Go on forever #fake:ignore-num-predict #fake:stamp #fake:tokens=100000 #fake:rate=0' },
    headers: { Origin: server.url },
  });
  assert.equal(response.status(), 201, await response.text());
  const { id } = await response.json();
  const selector = `article.post[data-post-id="${id}"] .ai-progress[data-status=completed]`;
  await page.waitForSelector(selector, { timeout: 30_000 });

  const whole = await (await page.request.get(`${server.url}/api/v1/posts/${id}`)).json();
  assert.equal(whole.job.stats.cut_at_bytes, 65536);
  assert.equal(whole.job.folded, false);
  // The answer's last whole words (the very last one is cut): what only the whole answer shows.
  const ending = whole.job.text.trim().split(/\s+/).slice(-3, -1).join(' ');

  // A fresh page gets the wall as the server folds it.
  await page.reload();
  const article = page.locator(`article.post[data-post-id="${id}"]`);
  const card = article.locator('.ai-progress');
  await card.waitFor();
  assert.equal(await card.locator('[data-testid=cut]').textContent(), 'Cut at 64 KB, the most a post keeps.');
  const body = article.locator('.answer-body');
  const showAll = article.locator('[data-testid=show-all]');
  await showAll.waitFor({ state: 'visible' });
  const folded = await body.textContent();
  assert.ok(folded.length < 8 * 1024, `${folded.length} characters before Show all`);
  assert.ok(!folded.replace(/\s+/g, ' ').includes(ending), 'the folded answer already ends as the whole one');

  await showAll.click();
  await showAll.waitFor({ state: 'hidden' });
  const shown = await body.textContent();
  assert.ok(shown.length > 60 * 1024, `${shown.length} characters after Show all`);
  assert.ok(shown.replace(/\s+/g, ' ').includes(ending), 'Show all did not bring the end of the answer');
  await context.close();
});
