// Posting on the wall in a real browser: a post appears without a reload and survives one;
// invalid posts are refused with a message; post text is shown as text, never run as HTML.
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';

import { launchBrowser, manyPosts, newPage, screenshot, startFakeOllama, startServer, waitForHydration } from './harness.js';

const POST_MAX_CHARS = 2000; // Leptos.toml [limits] post_max_chars

let ollama;
let server;
let browser;
let page;
let navigations;

async function openWall() {
  await page.goto(server.url);
  await waitForHydration(page);
}

const unique = (label) => `${label} ${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** The wall's posts whose text contains `text`. */
const postsWith = (text) => page.locator('article.post[data-post-id]').filter({
  has: page.locator('.post-text', { hasText: text }),
});

const postCount = () => page.locator('article.post[data-post-id]').count();

/**
 * Fills the composer for a text post and submits it. The text is set through the DOM (plus an
 * input event), not typed, so that a `maxlength` on the text area cannot shorten it and the
 * app's own validation is what gets tested; the form's native validation is switched off for
 * the same reason.
 */
async function submitTextPost({ name = 'Ada', text }) {
  const composer = page.locator('[data-testid=composer]');
  await composer.waitFor();
  await page.locator('#composer-name').fill(name);
  const textKind = page.locator('input[name=kind][value=text]');
  if (await textKind.count()) await textKind.check();
  await page.locator('#composer-text').evaluate((el, value) => {
    el.value = value;
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }, text);
  await composer.evaluate((form) => {
    if (form instanceof HTMLFormElement) form.noValidate = true;
  });
  await page.locator('[data-testid=composer-submit]').click();
}

describe('the wall', () => {
  before(async () => {
    // A reachable (fake) Ollama, so that the page's model list loads without errors.
    ollama = await startFakeOllama();
    server = await startServer({ env: { AIWALL_OLLAMA__URL: ollama.url, ...manyPosts } });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await ollama?.stop();
  });

  beforeEach(async () => {
    page = await newPage(browser);
    await openWall();
    // Document loads from here on: a full-page form submission would count one.
    navigations = 0;
    page.on('load', () => {
      navigations += 1;
    });
  });

  afterEach(async (t) => {
    await screenshot(page, `wall-${t.name}`).catch(() => {});
    await page.close();
  });

  test('the wall hydrates without console errors', async () => {
    assert.equal(await page.locator('[data-testid=composer]').count(), 1);
    assert.deepEqual(page.problems, []);
  });

  test('a text post appears without a reload and is still there after one', async () => {
    await page.evaluate(() => {
      window.__marker = 'same document';
    });
    const text = unique('Hello, wall!');
    await submitTextPost({ name: 'Ada', text });

    const post = postsWith(text);
    await post.first().waitFor();
    assert.equal(await post.count(), 1, 'exactly one post with the text');
    assert.equal((await post.locator('.post-author').textContent()).trim(), 'Ada');
    assert.equal(await page.evaluate(() => window.__marker), 'same document', 'the page was not reloaded');
    assert.equal(navigations, 0, 'no document was loaded');

    await page.reload();
    await waitForHydration(page);
    const again = postsWith(text);
    await again.first().waitFor();
    assert.equal(await again.count(), 1);
    assert.equal((await again.locator('.post-author').textContent()).trim(), 'Ada');
    assert.equal((await again.locator('.post-text').textContent()).trim(), text);
    assert.deepEqual(page.problems, [], 'no console errors or uncaught exceptions');
  });

  test('an empty post is refused with a message and adds nothing', async () => {
    const countBefore = await postCount();
    await submitTextPost({ text: '' });
    const error = page.locator('[data-testid=composer-error]');
    await error.waitFor({ state: 'visible' });
    assert.notEqual((await error.textContent()).trim(), '', 'the error says something');
    assert.equal(await postCount(), countBefore, 'no post was added');

    await page.reload();
    await waitForHydration(page);
    assert.equal(await postCount(), countBefore, 'no post was stored');
  });

  test(`a post longer than ${POST_MAX_CHARS} characters is refused with a message and adds nothing`, async () => {
    const maxlength = await page.locator('#composer-text').getAttribute('maxlength');
    if (maxlength !== null) assert.ok(Number(maxlength) <= POST_MAX_CHARS, `maxlength ${maxlength}`);

    const countBefore = await postCount();
    const marker = unique('too long');
    const text = `${marker} ${'x'.repeat(POST_MAX_CHARS)}`;
    await submitTextPost({ text });
    const error = page.locator('[data-testid=composer-error]');
    await error.waitFor({ state: 'visible' });
    assert.notEqual((await error.textContent()).trim(), '');
    assert.equal(await postsWith(marker).count(), 0, 'the post is not on the wall');
    assert.equal(await postCount(), countBefore);

    await page.reload();
    await waitForHydration(page);
    assert.equal(await postsWith(marker).count(), 0, 'the post was not stored');
  });

  test('the wall shows a page of posts and loads older ones on demand', async () => {
    for (let i = 0; i < 23; i += 1) {
      const response = await page.request.post(`${server.url}/api/v1/posts`, {
        data: { author_name: 'Pager', text: `paged post ${i}` },
      });
      assert.equal(response.status(), 201);
    }
    await openWall();
    const before = await postCount();
    assert.equal(before, 20, 'one page of 20');
    await page.locator('[data-testid=load-more]').click();
    await page.waitForFunction((n) => document.querySelectorAll('article.post[data-post-id]').length > n, before);
    const ids = await page.locator('article.post[data-post-id]').evaluateAll((els) => els.map((e) => Number(e.dataset.postId)));
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first, no duplicates');
    assert.equal(new Set(ids).size, ids.length);
  });

  test('markup in a post is shown as literal text and never runs', async () => {
    const dialogs = [];
    page.on('dialog', async (dialog) => {
      dialogs.push(dialog.message());
      await dialog.dismiss();
    });
    const marker = unique('xss');
    const text = `${marker} <script>alert(1)</script><img src=x onerror="alert(2)">`;
    await submitTextPost({ text });

    for (const when of ['live', 'after reload']) {
      const post = postsWith(marker);
      await post.first().waitFor();
      const shown = (await post.locator('.post-text').textContent()).trim();
      assert.ok(shown.includes('<script>alert(1)</script>'), `${when}: the script tag is shown as text: ${shown}`);
      assert.ok(shown.includes('<img src=x onerror="alert(2)">'), `${when}: the img tag is shown as text: ${shown}`);
      assert.equal(await post.locator('.post-text script, .post-text img').count(), 0, `${when}: no elements were made`);
      // Give an injected handler the chance to fire before concluding it did not.
      await page.waitForTimeout(500);
      assert.deepEqual(dialogs, [], `${when}: no dialog opened`);
      if (when === 'live') {
        await page.reload();
        await waitForHydration(page);
      }
    }
  });
});
