// A flood of posts arriving live, in real headless Chromium against the release binary: the wall
// keeps at most `limits.live_posts_max` posts (the oldest drop off the end, the page never holds
// more), and "Load older posts" brings the dropped ones back in order, without duplicates.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { manyPosts, openPage, startWall, stopWall } from './harness.js';

const LIVE_POSTS_MAX = 12;
const PAGE_SIZE = 5;

let ollama;
let server;
let browser;

before(async () => {
  ({ ollama, server, browser } = await startWall({
    AIWALL_LIMITS__LIVE_POSTS_MAX: String(LIVE_POSTS_MAX),
    AIWALL_LIMITS__PAGE_SIZE: String(PAGE_SIZE),
    ...manyPosts,
  }));
});

after(() => stopWall({ ollama, server, browser }));

/** Posts `n` text posts through the API, each as a new author; resolves with their ids. */
async function apiPosts(n, label) {
  const ids = [];
  for (let i = 0; i < n; i += 1) {
    const res = await fetch(`${server.url}/api/v1/posts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: server.url },
      body: JSON.stringify({ author_name: 'Flood', text: `${label} ${i}` }),
    });
    const body = await res.text();
    assert.equal(res.status, 201, body);
    ids.push(JSON.parse(body).id);
  }
  return ids;
}

const shownIds = (page) =>
  page.locator('article.post[data-post-id]').evaluateAll((els) => els.map((e) => Number(e.dataset.postId)));

const newestFirst = (ids) => [...ids].sort((a, b) => b - a);

describe('a flood of live posts', () => {
  test('keeps the wall at its bound, and "Load older posts" brings the rest back in order', async () => {
    const seeded = await apiPosts(3, 'before');
    const context = await browser.newContext();
    const page = await openPage(context, server.url);
    await page.locator('.live-status.live').waitFor({ timeout: 20_000 });
    assert.deepEqual(await shownIds(page), newestFirst(seeded), 'the whole wall, one page');
    assert.equal(await page.locator('[data-testid=load-more]').count(), 0, 'nothing older yet');

    // The most posts the page ever holds while the flood arrives.
    await page.evaluate(() => {
      const count = () => document.querySelectorAll('article.post[data-post-id]').length;
      window.mostPosts = count();
      new MutationObserver(() => {
        window.mostPosts = Math.max(window.mostPosts, count());
      }).observe(document.querySelector('section.posts'), { childList: true, subtree: true });
    });
    const flood = await apiPosts(30, 'flood');
    const newest = flood[flood.length - 1];
    await page.locator(`article.post[data-post-id="${newest}"]`).waitFor({ timeout: 20_000 });

    const all = newestFirst([...seeded, ...flood]);
    assert.deepEqual(await shownIds(page), all.slice(0, LIVE_POSTS_MAX), 'the newest, at the bound');
    assert.equal(await page.evaluate(() => window.mostPosts), LIVE_POSTS_MAX, 'never more on the page');

    // "Load older posts", page by page, until the wall's end: everything, once, in order.
    const loadMore = page.locator('[data-testid=load-more]');
    for (let clicks = 0; (await loadMore.count()) > 0; clicks += 1) {
      assert.ok(clicks < 10, 'the end of the wall is reached');
      const shown = (await shownIds(page)).length;
      await loadMore.click();
      await page.waitForFunction(
        (n) => document.querySelectorAll('article.post[data-post-id]').length > n,
        shown,
      );
      const ids = await shownIds(page);
      assert.deepEqual(ids, newestFirst(ids), 'newest first');
      assert.equal(new Set(ids).size, ids.length, 'no duplicates');
    }
    assert.deepEqual(await shownIds(page), all, 'every post back, in order');

    // What the reader loaded stays; one more live post drops only the oldest.
    const [late] = await apiPosts(1, 'late');
    await page.locator(`article.post[data-post-id="${late}"]`).waitFor();
    assert.deepEqual(await shownIds(page), [late, ...all.slice(0, -1)]);
    await loadMore.waitFor();
    await context.close();
  });
});
