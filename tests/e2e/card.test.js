// The live progress card and the wall that updates itself, in real headless Chromium against
// the release binary and the fake Ollama: from composer to finished post, eight generations on
// one page over one stream, reload mid-generation, Stop and Retry, a failing model, a second
// browser, and model output that tries to run script.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { manyPosts, openPage, screenshot, startWall, stopWall, waitForHydration } from './harness.js';

let ollama;
let server;
let browser;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  ({ ollama, server, browser } = await startWall({
    AIWALL_JOBS__CONCURRENCY: '8', ...manyPosts,
    // A model the fake has not "pulled", offered so that a post can name it.
    AIWALL_OLLAMA__ALLOWED_MODELS: '["llama3.2:1b","missing-model:7b"]',
  }));
});

after(() => stopWall({ ollama, server, browser }));

const openWall = (context, options) => openPage(context, server.url, options);

/** Writes a prompt in the composer and asks the AI; resolves with the new post's card. */
async function askAI(page, prompt, { maxTokens } = {}) {
  await page.locator('input[name=kind][value=ai]').check();
  await page.locator('#composer-text').fill(prompt);
  if (maxTokens) await page.locator('#composer-max-tokens').fill(String(maxTokens));
  const created = page.waitForResponse((r) => r.url().endsWith('/api/v1/ai/posts') && r.request().method() === 'POST');
  await page.locator('[data-testid=composer-submit]').click();
  const response = await created;
  assert.equal(response.status(), 201, await response.text());
  const post = await response.json();
  const card = page.locator(`article.post[data-post-id="${post.id}"] .ai-progress`);
  await card.waitFor();
  return { post, card };
}

/** Creates an AI post through the API with the page's own cookie (so the page is its author). */
async function apiAI(page, body) {
  const response = await page.request.post(`${server.url}/api/v1/ai/posts`, {
    data: { author_name: 'Tester', ...body },
    headers: { Origin: server.url },
  });
  assert.equal(response.status(), 201, await response.text());
  return response.json();
}

const statusOf = (card) => card.getAttribute('data-status');
const number = (text) => Number.parseInt(String(text).replace(/[^\d]/g, ''), 10) || 0;

describe('the progress card', () => {
  test('from composer to finished post: counters rise, the bar moves, time ticks, stats match', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    // 40 tokens at 8 per second after a 2.5 s model load: about 7.5 s in all. The max length
    // gives the bar an honest basis, so it shows a percent.
    const { post, card } = await askAI(page, 'Tell me about lighthouses #fake:load-ms=2500 #fake:rate=8 #fake:tokens=40', { maxTokens: 40 });

    // While the model loads no server event arrives, yet the elapsed time ticks.
    await page.waitForFunction((id) => document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status === 'loading', post.id);
    const ticks = new Set();
    for (let i = 0; i < 20; i += 1) {
      if ((await statusOf(card)) !== 'loading') break;
      ticks.add(await card.locator('[data-testid=elapsed]').textContent());
      await sleep(100);
    }
    // Whole seconds, so that the clock never changes format while it ticks.
    assert.ok(ticks.size >= 2, `elapsed time ticks on the client during the model load: ${[...ticks]}`);

    const samples = [];
    let shotTaken = false;
    const deadline = Date.now() + 30_000;
    while ((await statusOf(card)) !== 'completed') {
      assert.ok(Date.now() < deadline, `still ${await statusOf(card)} after 30 s`);
      // One atomic read of the card, so that it cannot finish between two reads.
      const sample = await card.evaluate((el) => el.dataset.status !== 'generating' ? null : {
        tokens: Number.parseInt(el.querySelector('[data-testid=tokens]').textContent, 10),
        percent: Number(el.querySelector('[role=progressbar]').getAttribute('aria-valuenow')),
        elapsed: el.querySelector('[data-testid=elapsed]').textContent,
      });
      if (sample) {
        samples.push(sample);
        if (!shotTaken && samples.at(-1).tokens >= 12) {
          await screenshot(page, 'card-generating-light');
          await page.emulateMedia({ colorScheme: 'dark' });
          await screenshot(page, 'card-generating-dark');
          await page.emulateMedia({ colorScheme: 'light' });
          shotTaken = true;
        }
      }
      await sleep(100);
    }
    assert.ok(samples.length >= 10, `sampled the card while it wrote (${samples.length})`);
    for (let i = 1; i < samples.length; i += 1) {
      assert.ok(samples[i].tokens >= samples[i - 1].tokens, `tokens never go down: ${JSON.stringify(samples)}`);
      assert.ok(samples[i].percent >= samples[i - 1].percent, `the bar never goes back: ${JSON.stringify(samples)}`);
      assert.ok(samples[i].percent < 100, 'not 100 % before done');
    }
    assert.ok(samples.at(-1).tokens > samples[0].tokens, 'the token count rose');
    assert.ok(samples.at(-1).percent > samples[0].percent, 'the bar moved');
    assert.ok(new Set(samples.map((s) => s.elapsed)).size >= 3, `the elapsed time kept moving: ${samples.map((s) => s.elapsed)}`);

    // Completion: check mark, statistics equal to what the server stored from the fake's final chunk.
    const stats = card.locator('[data-testid=stats]');
    await stats.waitFor();
    await assert.doesNotReject(card.locator('.check').waitFor());
    const job = await (await page.request.get(`${server.url}/api/v1/ai/generation/${post.job.id}`)).json();
    assert.equal(job.stats.output_tokens, 40, "the fake's eval_count");
    assert.equal(number(await stats.locator('[data-stat=input]').textContent()), job.stats.input_tokens);
    assert.equal(number(await stats.locator('[data-stat=output]').textContent()), job.stats.output_tokens);
    // The card gives way to the post's content.
    const content = page.locator(`article.post[data-post-id="${post.id}"] .post-text.markdown`);
    assert.equal((await content.textContent()).trim(), job.text.trim());
    assert.equal(await card.locator('[role=progressbar]').count(), 0, 'no bar once done');
    await screenshot(page, 'card-completed-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'card-completed-dark');
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('eight AI posts generate at once on one page, over one stream', async () => {
    const context = await browser.newContext();
    const streams = [];
    const page = await openWall(context, {
      beforeLoad: (p) => p.on('request', (r) => {
        if (r.url().includes('/events') || r.url().includes('/progress')) streams.push(r.url());
      }),
    });
    // Record, in the page, every card seen writing (tokens counted while still generating).
    await page.evaluate(() => {
      window.__writing = new Set();
      setInterval(() => {
        for (const card of document.querySelectorAll('.ai-progress[data-status=generating]')) {
          if (Number.parseInt(card.querySelector('[data-testid=tokens]')?.textContent ?? '0', 10) > 0) {
            window.__writing.add(card.dataset.jobId);
          }
        }
      }, 50);
    });
    const posts = [];
    for (let i = 0; i < 8; i += 1) {
      posts.push(await apiAI(page, { prompt: `parallel ${i} #fake:rate=10 #fake:tokens=40` }));
    }
    const cards = posts.map((p) => page.locator(`article.post[data-post-id="${p.id}"] .ai-progress`));
    // All eight write at the same time: each is seen writing while all are still running.
    await page.waitForFunction(() => window.__writing.size >= 8, null, { timeout: 20_000 }).catch(async () => {
      throw new Error(`only ${await page.evaluate(() => window.__writing.size)} of 8 cards were seen writing`);
    });
    const running = await page.locator('.ai-progress[data-status=generating]').count();
    assert.equal(running, 8, 'all eight generate at once');
    for (const card of cards) {
      await card.locator('.check').waitFor({ timeout: 20_000 });
    }
    assert.equal(streams.filter((u) => u.includes('/progress')).length, 0, 'no per-card streams');
    assert.equal(streams.length, 1, `one EventSource for the page: ${streams}`);
    await screenshot(page, 'eight-at-once');
    await context.close();
  });

  test('a reload mid-generation shows the same state at once and continues', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await askAI(page, 'A long one #fake:rate=10 #fake:tokens=60');
    await page.waitForFunction(
      (id) => Number.parseInt(document.querySelector(`article.post[data-post-id="${id}"] [data-testid=tokens]`)?.textContent ?? '0', 10) >= 15,
      post.id,
      { timeout: 15_000 },
    );
    // The server-rendered HTML alone already holds the card's progress and text so far.
    const html = await (await page.request.get(server.url)).text();
    const rendered = html.match(new RegExp(`data-post-id="${post.id}"[\\s\\S]*?data-testid="tokens"[^>]*>(\\d+) tokens`));
    assert.ok(rendered && Number(rendered[1]) >= 15, 'the reloaded page shows the progress at once');

    await page.reload();
    const before = number(await card.locator('[data-testid=tokens]').textContent());
    assert.ok(before >= 15, `state is there before hydration: ${before}`);
    await waitForHydration(page);
    await card.locator('.check').waitFor({ timeout: 20_000 });
    const job = await (await page.request.get(`${server.url}/api/v1/ai/generation/${post.job.id}`)).json();
    const content = page.locator(`article.post[data-post-id="${post.id}"] .post-text.markdown`);
    assert.equal((await content.textContent()).trim(), job.text.trim(), 'nothing lost, nothing doubled');
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('Stop and Retry work, and a failing model shows its error', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await askAI(page, 'Stop me #fake:rate=5 #fake:tokens=200');
    await page.waitForFunction((id) => document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status === 'generating', post.id);
    await card.locator('button[data-action=stop]').click();
    await page.waitForFunction((id) => document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status === 'cancelled', post.id);
    assert.match(await card.locator('.ai-error').textContent(), /Stopped/);
    await card.locator('button[data-action=retry]').click();
    await card.locator('.check').waitFor({ timeout: 60_000 }).catch(async () => {
      throw new Error(`retry did not complete: status ${await statusOf(card)}`);
    });

    const failing = await apiAI(page, { prompt: 'hello', model: 'missing-model:7b' });
    const failedCard = page.locator(`article.post[data-post-id="${failing.id}"] .ai-progress`);
    await page.waitForFunction((id) => document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status === 'failed', failing.id);
    assert.match(await failedCard.locator('.ai-error .sentence').textContent(), /This model is not available on the model server\./);
    assert.match(await failedCard.locator('[data-testid=hint]').textContent(), /ollama pull missing-model:7b/);
    assert.match(await failedCard.locator('[data-testid=detail]').textContent(), /model missing-model:7b is not installed/);
    assert.equal(await failedCard.locator('button[data-action=retry]').count(), 1);
    await screenshot(page, 'card-failed');

    // Another browser sees no buttons on posts that are not its own.
    const other = await browser.newContext();
    const stranger = await openWall(other);
    const strangerCard = stranger.locator(`article.post[data-post-id="${failing.id}"] .ai-progress`);
    await strangerCard.waitFor();
    assert.equal(await strangerCard.locator('.ai-actions button').count(), 0, 'no Stop or Retry for a stranger');
    assert.equal(await stranger.locator(`article.post[data-post-id="${failing.id}"] button[data-action=delete]`).count(), 0);
    await other.close();
    await context.close();
  });

  test('a second browser sees a new AI post appear and finish without reloading', async () => {
    const watcherContext = await browser.newContext();
    const watcher = await openWall(watcherContext);
    await watcher.evaluate(() => { window.__noReload = true; });
    const authorContext = await browser.newContext();
    const author = await openWall(authorContext);
    const { post } = await askAI(author, 'For everyone #fake:rate=20 #fake:tokens=30');
    const card = watcher.locator(`article.post[data-post-id="${post.id}"] .ai-progress`);
    await card.waitFor({ timeout: 10_000 });
    await card.locator('.check').waitFor({ timeout: 20_000 });
    assert.equal(await watcher.evaluate(() => window.__noReload), true, 'no reload happened');
    assert.equal(await card.locator('.ai-actions button').count(), 0, 'no Stop or Retry for a stranger');
    await watcherContext.close();
    await authorContext.close();
  });

  test('script in a prompt or in the model output runs nothing', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const dialogs = [];
    page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    const payload = '<img src=x onerror=alert(1)>';
    const { post, card } = await askAI(page, `${payload} #fake:rate=50 #fake:output=${encodeURIComponent(`Look: ${payload} <script>alert(2)</script> [x](javascript:alert(3)) **bold**`)}`);
    await card.locator('.check').waitFor({ timeout: 20_000 });
    const article = page.locator(`article.post[data-post-id="${post.id}"]`);
    assert.match(await article.locator('.post-prompt').textContent(), /<img src=x onerror=alert\(1\)>/);
    const content = article.locator('.post-text.markdown');
    assert.match(await content.textContent(), /<img src=x onerror=alert\(1\)>/);
    assert.equal(await article.locator('img').count(), 0);
    assert.equal(await article.locator('script').count(), 0);
    assert.equal(await content.locator('a[href^="javascript"]').count(), 0);
    assert.ok((await content.locator('strong').count()) >= 1, 'Markdown still renders');
    await sleep(300);
    assert.deepEqual(dialogs, []);
    await context.close();
  });

  test('accessible: a progress bar with values, a polite live region, 320 px wide, no motion when reduced', async () => {
    const context = await browser.newContext({ reducedMotion: 'reduce' });
    const page = await openWall(context, { width: 320 });
    // Ten answers of 60 tokens for the model's history (whatever ran before): a post without a
    // max length then has an honest percent. (card-states.test.js has the bar without history.)
    const history = [];
    for (let i = 0; i < 10; i += 1) history.push(await apiAI(page, { prompt: `history ${i} #fake:rate=400 #fake:tokens=60` }));
    for (const post of history) {
      await page.waitForFunction((id) => document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status === 'completed', post.id);
    }
    const { card } = await askAI(page, 'Small screen #fake:rate=5 #fake:tokens=40');
    const bar = card.locator('[role=progressbar]');
    await page.waitForFunction(() => document.querySelector('.ai-progress')?.dataset.status === 'generating');
    await page.waitForFunction(() => document.querySelector('.ai-progress [role=progressbar]')?.getAttribute('aria-valuenow') !== null);
    assert.ok(Number(await bar.getAttribute('aria-valuenow')) >= 0);
    assert.match(await bar.getAttribute('aria-valuetext'), /^\d+%, \d+ tokens?$/);
    assert.equal(await page.locator('[aria-live=polite]').count(), 1);
    const animation = await card.evaluate((el) => getComputedStyle(el).animationName);
    assert.equal(animation, 'none', 'no pulse when the user prefers reduced motion');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 320 px (${overflow} px too wide)`);
    const stop = card.locator('button[data-action=stop]');
    await stop.focus();
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.action), 'stop', 'Stop is reachable by keyboard');
    await screenshot(page, 'card-320px');
    await context.close();
  });

  // Last: it restarts the shared server.
  test('after a server crash and restart the card recovers by itself, nothing lost or doubled', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await askAI(page, 'Survive a crash #fake:rate=10 #fake:tokens=50');
    await page.waitForFunction(
      (id) => Number.parseInt(document.querySelector(`article.post[data-post-id="${id}"] [data-testid=tokens]`)?.textContent ?? '0', 10) >= 10,
      post.id,
    );
    await server.kill9();
    await page.locator('.live-status:not(.live)').waitFor({ timeout: 10_000 });
    await server.restart();
    await page.locator('.live-status.live').waitFor({ timeout: 20_000 });
    await card.locator('.check').waitFor({ timeout: 30_000 });
    const job = await (await page.request.get(`${server.url}/api/v1/ai/generation/${post.job.id}`)).json();
    assert.equal(job.status, 'completed');
    assert.equal(job.attempt, 2, 'the interrupted generation ran again from the start');
    const content = page.locator(`article.post[data-post-id="${post.id}"] .post-text.markdown`);
    assert.equal((await content.textContent()).trim(), job.text.trim(), 'nothing lost, nothing doubled');
    await context.close();
  });
});
