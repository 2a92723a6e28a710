// The wall for a person at a keyboard or a phone, in real headless Chromium against the release
// binary: where the focus goes (after posting, Ctrl+Enter, "Load older posts", Delete and
// Undo), what the composer remembers, Delete with undo, times in the reader's zone that keep
// current, and touch targets of at least 44 px at 375 px. Every test also checks that the page
// reported no console errors (a hydration mismatch shows there).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { manyPosts, newPage, screenshot, shots, startWall, stopWall, waitForHydration } from './harness.js';

let ollama;
let server;
let browser;
const open = new Set();

const unique = (label) => `${label} ${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

before(async () => {
  // Offered: two models the fake has, and one it has not (which the composer offers as not
  // available now: a post for it waits in the queue).
  ({ ollama, server, browser } = await startWall({
    ...manyPosts,
    AIWALL_OLLAMA__ALLOWED_MODELS: '["llama3.2:1b","qwen2.5:0.5b","mistral:7b"]',
  }));
});

after(() => stopWall({ ollama, server, browser }));

/** A fresh browser context (own cookies and storage) with one page on the wall. */
async function openWall({ width = 1280, timezoneId, clock, beforeLoad } = {}) {
  const context = await browser.newContext(timezoneId ? { timezoneId } : {});
  const page = await newPage(context);
  page.ctx = context;
  open.add(page);
  await page.setViewportSize({ width, height: 900 });
  if (clock) await page.clock.install({ time: clock });
  if (beforeLoad) await beforeLoad(page);
  await page.goto(server.url);
  await waitForHydration(page);
  return page;
}

async function reload(page) {
  await page.reload();
  await waitForHydration(page);
}

afterEach(async (t) => {
  for (const page of open) {
    await screenshot(page, `wall-ux-${t.name}`).catch(() => {});
    await page.ctx.close();
  }
  open.clear();
});

/** What has the focus: its tag, id, data-* and accessible label, for readable assertions. */
const focused = (page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    return {
      tag: el?.tagName.toLowerCase(),
      id: el?.id || null,
      postId: el?.dataset?.postId ?? el?.closest('article.post')?.dataset.postId ?? null,
      action: el?.dataset?.action ?? null,
      label: el?.getAttribute('aria-label') ?? el?.textContent?.trim() ?? null,
    };
  });

/** Writes a text post with the composer and resolves with the post the API answered. */
async function writePost(page, text, { name = 'Ada', send } = {}) {
  await page.locator('#composer-name').fill(name);
  await page.locator('input[name=kind][value=text]').check();
  await page.locator('#composer-text').fill(text);
  const created = page.waitForResponse((r) => r.url().endsWith('/api/v1/posts') && r.request().method() === 'POST');
  if (send) await send();
  else await page.locator('[data-testid=composer-submit]').click();
  const response = await created;
  assert.equal(response.status(), 201, await response.text());
  const post = await response.json();
  await page.locator(`article.post[data-post-id="${post.id}"]`).waitFor();
  return post;
}

/** Waits until the element with `id` has the focus. */
const focusOnId = (page, id) => page.waitForFunction((want) => document.activeElement?.id === want, id);

const article = (page, id) => page.locator(`article.post[data-post-id="${id}"]`);
const shownIds = (page) =>
  page.locator('article.post[data-post-id]:not([hidden])').evaluateAll((els) => els.map((e) => Number(e.dataset.postId)));

/** Posts through the API with a cookie of their own (so nobody's page offers to delete them). */
async function apiPosts(n, label) {
  for (let i = 0; i < n; i += 1) {
    const res = await fetch(`${server.url}/api/v1/posts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: server.url },
      body: JSON.stringify({ author_name: 'Pager', text: `${label} ${i}` }),
    });
    assert.equal(res.status, 201, await res.text());
  }
}

describe('item 8: the keyboard', () => {
  test('after posting the focus is back in the text area, and Ctrl+Enter or Cmd+Enter sends', async () => {
    const page = await openWall();
    const first = await writePost(page, unique('clicked'));
    await focusOnId(page, 'composer-text');

    const second = await writePost(page, unique('ctrl enter'), { send: () => page.locator('#composer-text').press('Control+Enter') });
    await focusOnId(page, 'composer-text');
    assert.equal(await page.locator('#composer-text').inputValue(), '', 'the text area was emptied');

    const third = await writePost(page, unique('cmd enter'), { send: () => page.locator('#composer-text').press('Meta+Enter') });
    await focusOnId(page, 'composer-text');
    assert.deepEqual((await shownIds(page)).slice(0, 3), [third.id, second.id, first.id]);

    // A plain Enter is a new line, not a post.
    await page.locator('#composer-text').press('Enter');
    assert.equal(await page.locator('#composer-text').inputValue(), '\n');
    assert.deepEqual(page.problems, []);
  });

  test('"Load older posts" moves the focus to the first post it loaded, which shows it', async () => {
    await apiPosts(23, unique('older'));
    const page = await openWall();
    const before = await shownIds(page);
    assert.equal(before.length, 20, 'one page of 20');
    // By keyboard: focus the button and press Enter.
    await page.locator('[data-testid=load-more]').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction((n) => document.querySelectorAll('article.post[data-post-id]').length > n, before.length);
    const after = await shownIds(page);
    const firstNew = after.find((id) => !before.includes(id));
    await page.waitForFunction((id) => document.activeElement?.dataset?.postId === String(id), firstNew);
    const focus = await focused(page);
    assert.equal(focus.tag, 'article');
    assert.equal(Number(focus.postId), firstNew, 'the first post loaded has the focus');
    const outline = await article(page, firstNew).evaluate((el) => getComputedStyle(el).outlineStyle);
    assert.notEqual(outline, 'none', 'the focused post shows it');
    await shots(page, 'ux-load-more-focus', article(page, firstNew));
    assert.deepEqual(page.problems, []);
  });

  test("Delete's accessible name says which post", async () => {
    const page = await openWall();
    const text = 'Hello world, this is a rather long first post';
    const post = await writePost(page, `${text} ${unique('')}`);
    const button = article(page, post.id).getByRole('button', { name: 'Delete your post “Hello world, this is a rather…”' });
    assert.equal(await button.count(), 1);
    assert.equal((await button.textContent()).trim(), 'Delete');
    assert.deepEqual(page.problems, []);
  });
});

describe('item 9: the composer remembers, and Delete can be undone', () => {
  test('the name, the kind of post and the model survive a reload', async () => {
    const page = await openWall();
    await page.locator('#composer-name').fill('Grace Hopper');
    await page.locator('input[name=kind][value=ai]').check();
    await page.locator('#composer-model option[value="qwen2.5:0.5b"]').waitFor({ state: 'attached' });
    const offered = await page.locator('#composer-model option').evaluateAll((options) => options.map((o) => [o.value, o.textContent]));
    assert.deepEqual(
      offered.map(([value]) => value).sort(),
      ['llama3.2:1b', 'mistral:7b', 'qwen2.5:0.5b'],
      'every allowed model',
    );
    // One model server: where a model is available goes without saying; whether it is does not.
    assert.deepEqual(
      Object.fromEntries(offered),
      { 'llama3.2:1b': 'llama3.2:1b', 'qwen2.5:0.5b': 'qwen2.5:0.5b', 'mistral:7b': 'mistral:7b · not available now' },
    );
    await page.locator('#composer-model').selectOption('mistral:7b');
    assert.match(
      await page.locator('[data-testid=model-unavailable]').textContent(),
      /^No model server has mistral:7b right now: an AI post for it waits in the queue until one does\.$/,
    );
    await shots(page, 'ux-composer-model-unavailable', page.locator('[data-testid=composer]'));
    await page.locator('#composer-model').selectOption('qwen2.5:0.5b');

    await reload(page);
    await page.waitForFunction(() => document.querySelector('#composer-name')?.value === 'Grace Hopper');
    assert.equal(await page.locator('input[name=kind][value=ai]').isChecked(), true, 'AI is still chosen');
    await page.waitForFunction(() => document.querySelector('#composer-model')?.value === 'qwen2.5:0.5b');
    assert.equal(await page.locator('[data-testid=composer-submit]').textContent(), 'Ask the AI');
    await shots(page, 'ux-composer-ai', page.locator('[data-testid=composer]'));

    await page.locator('input[name=kind][value=text]').check();
    await reload(page);
    await page.waitForFunction(() => document.querySelector('#composer-name')?.value === 'Grace Hopper');
    assert.equal(await page.locator('input[name=kind][value=text]').isChecked(), true, 'back to a text post');
    await shots(page, 'ux-composer-text', page.locator('[data-testid=composer]'));
    assert.deepEqual(page.problems, [], 'the stored values caused no hydration mismatch');
  });

  test('Delete hides the post and offers Undo, which puts it back and sends nothing', async () => {
    const page = await openWall();
    const deletes = [];
    page.on('request', (r) => {
      if (r.method() === 'DELETE') deletes.push(r.url());
    });
    await writePost(page, unique('neighbour'));
    const post = await writePost(page, unique('undo me'));
    await writePost(page, unique('newer'));
    const order = await shownIds(page);

    await article(page, post.id).locator('button[data-action=delete]').click();
    assert.equal(await article(page, post.id).isVisible(), false, 'hidden at once');
    const toast = page.locator('[data-testid=toast]');
    assert.equal(await toast.getAttribute('role'), 'status');
    // A status is a polite live region by definition (ARIA); no second aria-live on the page.
    assert.equal(await toast.getAttribute('aria-live'), null);
    await page.locator('.toast:not([hidden])').waitFor();
    assert.equal((await page.locator('.toast:not([hidden])').textContent()).replace(/\s+/g, ' ').trim(), 'Post deleted · Undo');
    await page.waitForFunction(() => document.activeElement?.dataset?.action === 'undo');
    await shots(page, 'ux-toast');

    // Undo from the keyboard: the focus is on it.
    await page.keyboard.press('Enter');
    await article(page, post.id).waitFor({ state: 'visible' });
    assert.deepEqual(await shownIds(page), order, 'back in its place');
    await page.waitForFunction((id) => document.activeElement?.closest('article.post')?.dataset.postId === String(id), post.id);
    const focus = await focused(page);
    assert.equal(focus.action, 'delete', "the focus is on the post's Delete button");
    assert.equal(await page.locator('.toast:not([hidden])').count(), 0, 'the toast is gone');

    await page.waitForTimeout(6000);
    assert.deepEqual(deletes, [], 'no DELETE was sent');
    await reload(page);
    await article(page, post.id).waitFor();
    assert.deepEqual(page.problems, []);
  });

  test('Delete, then the toast expires: the post is deleted for good and the focus moves on', async () => {
    const page = await openWall();
    const older = await writePost(page, unique('stays'));
    const post = await writePost(page, unique('goes'));
    const deleted = page.waitForResponse((r) => r.request().method() === 'DELETE', { timeout: 10_000 });
    const clickedAt = Date.now();
    await article(page, post.id).locator('button[data-action=delete]').click();
    await page.waitForFunction(() => document.activeElement?.dataset?.action === 'undo');
    const response = await deleted;
    assert.ok(Date.now() - clickedAt >= 4500, 'sent when the toast expired, not before');
    assert.equal(response.url(), `${server.url}/api/v1/posts/${post.id}`);
    assert.ok(response.ok(), `DELETE answered ${response.status()}`);
    await article(page, post.id).waitFor({ state: 'detached' });
    await page.waitForFunction((id) => document.activeElement?.dataset?.postId === String(id), older.id);
    assert.equal(await page.locator('.toast:not([hidden])').count(), 0);

    await reload(page);
    assert.equal(await article(page, post.id).count(), 0, 'gone after a reload');
    assert.equal(await article(page, older.id).count(), 1);
    assert.deepEqual(page.problems, []);
  });

  test('a post deleted elsewhere meanwhile does not come back on Undo', async () => {
    const page = await openWall();
    const post = await writePost(page, unique('elsewhere'));
    await article(page, post.id).locator('button[data-action=delete]').click();
    await page.locator('.toast:not([hidden])').waitFor();
    // The same author deletes it from another tab: the wall's stream says so.
    const res = await page.ctx.request.delete(`${server.url}/api/v1/posts/${post.id}`, { headers: { origin: server.url } });
    assert.equal(res.status(), 204);
    await article(page, post.id).waitFor({ state: 'detached' });
    await page.locator('.toast:not([hidden]) button[data-action=undo]').click();
    await page.waitForTimeout(300);
    assert.equal(await article(page, post.id).count(), 0, 'not resurrected');
    assert.notEqual((await focused(page)).tag, 'body', 'the focus did not fall to <body>');
    assert.deepEqual(page.problems, []);
  });

  test('a refused deletion brings the post back with the reason', async () => {
    const page = await openWall();
    const post = await writePost(page, unique('refused'));
    await page.route(`**/api/v1/posts/${post.id}`, (route) =>
      route.request().method() === 'DELETE'
        ? route.fulfill({
            status: 503,
            contentType: 'application/json',
            body: JSON.stringify({ error: { code: 'database', message: 'The database is busy; try again.' } }),
          })
        : route.continue(),
    );
    await article(page, post.id).locator('button[data-action=delete]').click();
    await article(page, post.id).waitFor({ state: 'hidden' });
    const error = article(page, post.id).locator('[role=alert]');
    await error.waitFor({ timeout: 10_000 });
    assert.equal((await error.textContent()).trim(), 'The database is busy; try again.');
    assert.equal(await article(page, post.id).isVisible(), true, 'the post is back');
    assert.notEqual((await focused(page)).tag, 'body');
    // Chromium reports the refused request itself on the console; nothing else may show.
    assert.deepEqual(page.problems.filter((p) => !p.includes('503')), []);
  });
});

describe('item 10: times in the reader\'s zone', () => {
  test('relative times in New York, the full date on hover, kept current without a reload', async () => {
    const res = await fetch(`${server.url}/api/v1/posts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: server.url },
      body: JSON.stringify({ author_name: 'Clock', text: unique('timed') }),
    });
    assert.equal(res.status, 201);
    const post = await res.json();
    const page = await openWall({ timezoneId: 'America/New_York', clock: new Date() });
    const time = article(page, post.id).locator('time.post-time');

    const iso = new Date(post.created_at).toISOString().replace(/\.\d{3}Z$/, 'Z');
    assert.equal(await time.getAttribute('datetime'), iso);
    await page.waitForFunction(
      (id) => /E[SD]T/.test(document.querySelector(`article.post[data-post-id="${id}"] time`)?.title ?? ''),
      post.id,
    );
    const title = await time.getAttribute('title');
    const newYork = (options) => new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', ...options }).format(post.created_at);
    assert.ok(title.includes(newYork({ year: 'numeric' })), title);
    assert.ok(title.includes(newYork({ hour: 'numeric', minute: '2-digit' }).replace(/\s?[AP]M$/, '')), `New York's hour in ${title}`);
    assert.equal((await time.textContent()).trim(), 'just now');

    const textAfter = async (duration, expected) => {
      await page.clock.fastForward(duration);
      await page.waitForFunction(
        ([id, text]) => document.querySelector(`article.post[data-post-id="${id}"] time`)?.textContent.trim() === text,
        [post.id, expected],
        { timeout: 5000 },
      ).catch(async () => assert.fail(`after ${duration}: ${await time.textContent()}, not ${expected}`));
    };
    await textAfter(2 * 60_000, '2 min');
    // A day later: yesterday, at New York's time of day.
    const hhmm = new Intl.DateTimeFormat('en-GB', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(post.created_at);
    await textAfter(24 * 3_600_000, `Yesterday ${hhmm}`);
    await textAfter(72 * 3_600_000, newYork({ month: 'short', day: 'numeric' }));
    await shots(page, 'ux-post-time', article(page, post.id));
    assert.deepEqual(page.problems, [], 'the server-rendered times hydrated without a mismatch');
  });
});

describe('item 12: the phone', () => {
  test('at 375 px every touch target is at least 44 px and a long name keeps Delete on the first line', async () => {
    await apiPosts(21, unique('filler'));
    const page = await openWall({ width: 375 });
    const name = 'Maximiliana Evangelina Rosalind Fairweat';
    assert.equal(name.length, 40);
    const post = await writePost(page, unique('long name'), { name });

    const atLeast44 = async (locator, what) => {
      const box = await locator.boundingBox();
      assert.ok(box, `${what} is shown`);
      assert.ok(box.width >= 44 && box.height >= 44, `${what} is ${box.width}×${box.height}`);
    };
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      await atLeast44(page.locator('.kind label').nth(0), 'the Post segment');
      await atLeast44(page.locator('.kind label').nth(1), 'the Ask the AI segment');
      await atLeast44(page.locator('[data-testid=composer-submit]'), 'the submit button');
      await atLeast44(article(page, post.id).locator('button[data-action=delete]'), 'Delete');
      await atLeast44(page.locator('[data-testid=load-more]'), 'Load older posts');
    }
    await page.emulateMedia({ colorScheme: 'light' });

    // The header: one line, the name cut with an ellipsis, Delete at its right end.
    const header = article(page, post.id).locator('.post-header');
    const author = await header.locator('.post-author').boundingBox();
    const del = await header.locator('button[data-action=delete]').boundingBox();
    const card = await article(page, post.id).boundingBox();
    assert.ok(Math.abs(author.y + author.height / 2 - (del.y + del.height / 2)) < 4, 'Delete is on the name\'s line');
    assert.ok(card.x + card.width - (del.x + del.width) < 16, 'Delete is at the right');
    assert.ok(del.x + del.width <= card.x + card.width, 'Delete is inside the card');
    const cut = await header.locator('.post-author').evaluate((el) => ({
      truncated: el.scrollWidth > el.clientWidth,
      overflow: getComputedStyle(el).textOverflow,
    }));
    assert.deepEqual(cut, { truncated: true, overflow: 'ellipsis' });
    assert.equal(await header.locator('.post-author').getAttribute('title'), name, 'the whole name on hover');
    // The author's tag stays whole beside the cut name: a display name cannot pass for another's.
    const tag = header.locator('.post-author-tag');
    assert.match(await tag.textContent(), /^#[0-9a-f]{6}$/);
    const tagBox = await tag.boundingBox();
    assert.ok(tagBox.x >= author.x + author.width, 'the tag follows the name');
    assert.ok(Math.abs(tagBox.y + tagBox.height / 2 - (author.y + author.height / 2)) < 4, 'on the name\'s line');
    assert.equal(await tag.evaluate((el) => el.scrollWidth <= el.clientWidth), true, 'and is not cut');
    await shots(page, 'ux-long-name', article(page, post.id));

    // The composer's one-line fields line up (a select and an input, both 44 px).
    await page.locator('input[name=kind][value=ai]').check();
    const select = await page.locator('#composer-model').boundingBox();
    const number = await page.locator('#composer-max-tokens').boundingBox();
    const nameBox = await page.locator('#composer-name').boundingBox();
    assert.equal(select.height, number.height, 'model and max length are as tall');
    assert.equal(select.height, nameBox.height, 'and as tall as the name');
    await page.setViewportSize({ width: 1280, height: 900 });
    const wide = {
      select: await page.locator('#composer-model').boundingBox(),
      number: await page.locator('#composer-max-tokens').boundingBox(),
      name: await page.locator('#composer-name').boundingBox(),
      kind: await page.locator('.kind').boundingBox(),
    };
    assert.equal(wide.select.y, wide.number.y, 'model and max length line up');
    assert.ok(Math.abs(wide.name.y + wide.name.height - (wide.kind.y + wide.kind.height)) <= 0.5, 'name and kind end on one line');
    await page.locator('input[name=kind][value=text]').check();
    await page.setViewportSize({ width: 375, height: 900 });

    // The toast's Undo.
    await article(page, post.id).locator('button[data-action=delete]').click();
    await atLeast44(page.locator('.toast:not([hidden]) button[data-action=undo]'), 'Undo');
    await page.locator('.toast:not([hidden]) button[data-action=undo]').click();
    await article(page, post.id).waitFor({ state: 'visible' });
    assert.deepEqual(page.problems, []);
  });
});
