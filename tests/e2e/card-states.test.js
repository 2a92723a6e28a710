// The card as people read it (issue 9): an honest bar, a stall and a lost connection said in
// words, the finished post's one line of statistics below the answer, failures in plain
// sentences, the compact queued line, Stop in reach, and focus that never falls to <body>.
// Each state is photographed at 1280 and 375 px, light and dark (tests/e2e/screenshots).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { manyPosts, openPage, shots, startFakeOllama, startWall, stopWall } from './harness.js';

let ollama;
let server;
let browser;

before(async () => {
  ({ ollama, server, browser } = await startWall({
    AIWALL_JOBS__CONCURRENCY: '2', AIWALL_JOBS__RETRY_BASE_MS: '1500', ...manyPosts,
    // A model the fake has not "pulled", offered so that a post can name it.
    AIWALL_OLLAMA__ALLOWED_MODELS: '["llama3.2:1b","missing-model:7b"]',
  }));
});

after(() => stopWall({ ollama, server, browser }));

/** The wall at 1280 px; unless `author` is false, as an author (the page knows its own posts). */
function openWall(context, { width = 1280, author = true } = {}) {
  return openPage(context, server.url, {
    width,
    height: 900,
    beforeLoad: author && (async (page) => {
      // A first post gives the context its author cookie, so the page knows its own AI posts.
      const hello = await page.request.post(`${server.url}/api/v1/posts`, {
        data: { author_name: 'Ada', text: 'Hello from the tests' },
        headers: { Origin: server.url },
      });
      assert.equal(hello.status(), 201, await hello.text());
    }),
  });
}

/** Creates an AI post through the API with the page's own cookie (so the page is its author). */
async function ask(page, prompt, extra = {}) {
  const response = await page.request.post(`${server.url}/api/v1/ai/posts`, {
    data: { author_name: 'Ada', prompt, ...extra },
    headers: { Origin: server.url },
  });
  assert.equal(response.status(), 201, await response.text());
  const post = await response.json();
  const article = page.locator(`article.post[data-post-id="${post.id}"]`);
  const card = article.locator('.ai-progress');
  await card.waitFor();
  return { post, article, card };
}

/** Resolves once the card's state satisfies `predicate(card element)`, evaluated in the page. */
function cardWhen(page, post, predicate, timeout = 30_000) {
  // The probe is compiled here in Node, not in the page, whose Content-Security-Policy (rightly)
  // forbids it `new Function` and `eval`; Playwright hands the page a real function. (A string
  // would be an expression whose value, a function, is truthy at once.)
  const probe = new Function(
    'id',
    `const card = document.querySelector('article.post[data-post-id="' + id + '"] .ai-progress');
     return Boolean(card && (${predicate})(card));`,
  );
  return page.waitForFunction(probe, post.id, { timeout });
}

const tokensOf = (card) => Number.parseInt((card.querySelector('[data-testid=tokens]')?.textContent ?? '0').replace(/,/g, ''), 10);
const activeElement = (page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    return el ? `${el.tagName.toLowerCase()}${el.dataset.action ? `[${el.dataset.action}]` : ''}${el.classList.contains('ai-progress') ? '.ai-progress' : ''}` : 'none';
  });
const api = (page, path) => page.request.post(`${server.url}${path}`, { headers: { Origin: server.url } });

describe('the card as people read it', () => {
  test('1. no honest length: an indeterminate bar and the live count; a max length: a real percent', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await ask(page, 'Unknown length #fake:rate=8 #fake:tokens=400');
    await cardWhen(page, post, (c) => c.dataset.status === 'generating' && Number.parseInt(c.querySelector('[data-testid=tokens]')?.textContent ?? '0', 10) >= 5);
    const bar = card.locator('[role=progressbar]');
    assert.equal(await bar.getAttribute('aria-valuenow'), null, 'no percent without a basis');
    assert.match(await bar.getAttribute('aria-valuetext'), /^Writing, \d+ tokens$/);
    assert.match(await bar.getAttribute('class'), /indeterminate/);
    assert.match(await card.locator('[data-testid=tokens]').textContent(), /^\d+ tokens$/);
    assert.equal(await card.locator('[data-testid=eta]').count(), 0, 'no time remaining without a basis');
    await shots(page, 'card-writing-indeterminate', card.locator('xpath=ancestor::article'));

    const capped = await ask(page, 'Known length #fake:rate=10 #fake:tokens=400', { max_tokens: 60 });
    await cardWhen(page, capped.post, (c) => Number(c.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow')) >= 10);
    const cappedBar = capped.card.locator('[role=progressbar]');
    assert.doesNotMatch(await cappedBar.getAttribute('class'), /indeterminate/);
    assert.match(await cappedBar.getAttribute('aria-valuetext'), /^\d+%, \d+ tokens$/);
    // The fill's width is a class per whole percent (the CSP forbids inline styles); without
    // the transition the drawn width is the percent the bar announces.
    await page.emulateMedia({ reducedMotion: 'reduce' });
    const drawn = await cappedBar.evaluate((bar) => {
      const fill = bar.querySelector('.bar-fill');
      return {
        now: Number(bar.getAttribute('aria-valuenow')),
        step: Number(/\bp(\d+)\b/.exec(fill.className)?.[1]),
        share: (100 * fill.getBoundingClientRect().width) / bar.getBoundingClientRect().width,
      };
    });
    await page.emulateMedia({ reducedMotion: 'no-preference' });
    assert.equal(drawn.step, drawn.now, `the fill's class is the announced percent (${JSON.stringify(drawn)})`);
    assert.ok(Math.abs(drawn.share - drawn.now) < 0.5, `the fill is drawn at the announced percent (${JSON.stringify(drawn)})`);
    await shots(page, 'card-writing-determinate', capped.article);
    await api(page, `/api/v1/ai/generation/${post.job.id}/cancel`);
    await capped.card.locator('.check').waitFor();
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('1. a Retry starts a fresh bar that says "Started again"; a transient failure shows its reason beside the countdown', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await ask(page, 'Go again #fake:rate=12 #fake:tokens=100', { max_tokens: 100 });
    await cardWhen(page, post, (c) => Number(c.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow')) >= 40);
    assert.equal(await card.locator('[data-testid=started-again]').count(), 0);
    await card.locator('button[data-action=stop]').click();
    await cardWhen(page, post, (c) => c.dataset.status === 'cancelled');
    await card.locator('button[data-action=retry]').click();
    await cardWhen(page, post, (c) => c.dataset.status === 'generating' && Number.parseInt(c.querySelector('[data-testid=tokens]')?.textContent ?? '0', 10) >= 3);
    const fresh = await card.evaluate((c) => ({
      percent: Number(c.querySelector('[role=progressbar]').getAttribute('aria-valuenow')),
      note: c.querySelector('[data-testid=started-again]')?.textContent,
    }));
    assert.ok(fresh.percent < 30, `the bar started over: ${fresh.percent} %`);
    assert.equal(fresh.note, 'Started again');
    await shots(page, 'card-started-again', card.locator('xpath=ancestor::article'));
    await card.locator('.check').waitFor({ timeout: 30_000 });

    // 503 once: the card says why it waits, and counts down.
    const busy = await ask(page, 'Busy first #fake:fail-first=1 #fake:rate=20 #fake:tokens=20');
    await cardWhen(page, busy.post, (c) => /Trying again in \d+ s/.test(c.querySelector('[data-testid=phase]').textContent));
    assert.match(await busy.card.locator('[data-testid=phase]').textContent(), /^The model server was busy\. Trying again in \d+ s$/);
    await shots(page, 'card-retrying', busy.card);
    await cardWhen(page, busy.post, (c) => c.dataset.status === 'generating');
    // A busy server costs no attempt, and it answered before any text: nothing started over.
    assert.equal(await busy.card.locator('[data-testid=started-again]').count(), 0);
    await busy.card.locator('.check').waitFor();
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('2. a stalled model: "No new tokens for N s…" and dimmed numbers', async (t) => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await ask(page, 'Stall #fake:rate=10 #fake:tokens=100 #fake:stall-after=8');
    // A stalled job holds a slot until it is stopped, whatever the outcome of this test.
    t.after(async () => {
      await api(page, `/api/v1/ai/generation/${post.job.id}/cancel`);
      await context.close();
    });
    await cardWhen(page, post, (c) => c.dataset.status === 'generating');
    await cardWhen(page, post, (c) => /^No new tokens for \d+ s…$/.test(c.querySelector('[data-testid=phase]').textContent), 15_000);
    assert.match(await card.getAttribute('class'), /\bstalled\b/);
    assert.equal(await card.locator('[data-testid=eta]').count(), 0, 'no time remaining while nothing moves');
    // Dimmed (after a short fade).
    await page.waitForFunction(
      (id) => Number(getComputedStyle(document.querySelector(`article.post[data-post-id="${id}"] .ai-numbers`)).opacity) < 0.6,
      post.id,
    );
    const first = await card.locator('[data-testid=phase]').textContent();
    await page.waitForFunction(
      ([id, was]) => document.querySelector(`article.post[data-post-id="${id}"] [data-testid=phase]`).textContent !== was,
      [post.id, first],
    );
    await shots(page, 'card-stalled', card);
    await api(page, `/api/v1/ai/generation/${post.job.id}/cancel`);
    await cardWhen(page, post, (c) => c.dataset.status === 'cancelled');
  });

  test('4. the finished post: the answer first, then one muted line that opens the details', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, article, card } = await ask(page, 'Finish #fake:rate=40 #fake:tokens=30');
    await card.locator('.check').waitFor();
    const job = await (await page.request.get(`${server.url}/api/v1/ai/generation/${post.job.id}`)).json();
    const summary = card.locator('[data-testid=summary]');
    const line = await summary.textContent();
    assert.match(line, /^30 tokens · [\d.]+ tok\/s · [\d.]+( min [\d]+)? s · first token [\d.]+ s$/, line);
    assert.ok(line.startsWith(`${job.stats.output_tokens} tokens`), 'the answer\'s tokens, not the prompt\'s as well');
    const stats = card.locator('[data-testid=stats]');
    assert.equal(await stats.getAttribute('open'), null, 'the details are closed');
    const answerBox = await card.locator('[data-testid=answer], .post-text, .ai-live-text').first().boundingBox();
    const summaryBox = await summary.boundingBox();
    assert.ok(answerBox.y + answerBox.height <= summaryBox.y + 1, 'the statistics come after the answer');
    const prompt = await article.locator('.post-prompt').boundingBox();
    assert.ok(answerBox.y - (prompt.y + prompt.height) < 80, `little between the prompt and the answer (${answerBox.y - (prompt.y + prompt.height)} px)`);
    await shots(page, 'card-finished', article);
    await summary.click();
    assert.equal(await stats.getAttribute('open'), '');
    assert.equal(await stats.locator('[data-stat=output]').textContent(), `${job.stats.output_tokens} tokens`);
    assert.match(await stats.locator('[data-stat=ttft]').textContent(), /^[\d.]+ s$/);
    await shots(page, 'card-finished-details', article);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('5. Stop sits in the card\'s head, above the answer, while it streams', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await ask(page, 'Long one #fake:rate=30 #fake:tokens=300');
    await cardWhen(page, post, (c) => Number.parseInt(c.querySelector('[data-testid=tokens]')?.textContent ?? '0', 10) >= 60);
    const stop = card.locator('.ai-progress-head button[data-action=stop]');
    assert.equal(await stop.count(), 1, 'Stop is in the head');
    const stopBox = await stop.boundingBox();
    const numbersBox = await card.locator('.ai-numbers').boundingBox();
    assert.ok(stopBox.y < numbersBox.y, 'Stop comes before the answer and the numbers');
    assert.ok(stopBox.height >= 44 && stopBox.width >= 44, `a 44 px target (${stopBox.width}×${stopBox.height})`);
    await stop.click();
    await cardWhen(page, post, (c) => c.dataset.status === 'cancelled');
    await context.close();
  });

  test('6. errors for people: a plain sentence, the detail behind a toggle, the hint only for the author, a neutral Stopped', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const broke = await ask(page, 'Break #fake:rate=30 #fake:tokens=40 #fake:error-after=6');
    await cardWhen(page, broke.post, (c) => c.dataset.status === 'failed');
    assert.equal(await broke.card.locator('.sentence').textContent(), 'The model hit a problem partway.');
    const detail = broke.card.locator('[data-testid=detail]');
    assert.equal(await detail.isVisible(), false, 'the detail is behind a toggle');
    await broke.card.locator('.ai-error summary').click();
    assert.match(await detail.textContent(), /failed while generating/);
    await shots(page, 'card-failed', broke.article);

    const missing = await ask(page, 'hello', { model: 'missing-model:7b' });
    await cardWhen(page, missing.post, (c) => c.dataset.status === 'failed');
    assert.equal(await missing.card.locator('.sentence').textContent(), 'This model is not available on the model server.');
    assert.match(await missing.card.locator('[data-testid=hint]').textContent(), /ollama pull missing-model:7b/);
    assert.doesNotMatch(await missing.card.locator('[data-testid=detail]').textContent(), /ollama pull/);

    const strangerContext = await browser.newContext();
    const stranger = await openWall(strangerContext, { author: false });
    const seen = stranger.locator(`article.post[data-post-id="${missing.post.id}"] .ai-progress`);
    await seen.waitFor();
    assert.equal(await seen.locator('.sentence').textContent(), 'This model is not available on the model server.');
    assert.equal(await seen.locator('[data-testid=hint]').count(), 0, 'no operator hint for viewers');
    assert.equal(await seen.locator('.ai-actions button').count(), 0, 'no Retry for a viewer');
    await shots(stranger, 'card-failed-viewer', seen);
    await strangerContext.close();

    const stopped = await ask(page, 'Stop me #fake:rate=10 #fake:tokens=200');
    await cardWhen(page, stopped.post, (c) => c.dataset.status === 'generating');
    await stopped.card.locator('button[data-action=stop]').click();
    await cardWhen(page, stopped.post, (c) => c.dataset.status === 'cancelled');
    assert.match(await stopped.card.getAttribute('class'), /\bstopped\b/);
    assert.doesNotMatch(await stopped.card.getAttribute('class'), /\bfailed\b/);
    assert.equal(await stopped.card.locator('.warn').count(), 0, 'no red "!" for a chosen stop');
    assert.equal(await stopped.card.locator('[data-testid=phase]').textContent(), 'Stopped');
    const border = await stopped.card.evaluate((el) => getComputedStyle(el).borderTopColor);
    const failedBorder = await broke.card.evaluate((el) => getComputedStyle(el).borderTopColor);
    assert.notEqual(border, failedBorder, 'a stop is not drawn as a failure');
    await shots(page, 'card-stopped', stopped.article);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('7. queued cards are one compact line that grows into the card when the job starts', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const blockers = [await ask(page, 'First #fake:rate=10 #fake:tokens=400'), await ask(page, 'Second #fake:rate=10 #fake:tokens=400')];
    for (const b of blockers) await cardWhen(page, b.post, (c) => c.dataset.status === 'generating');
    const waiting = await ask(page, 'Third #fake:rate=20 #fake:tokens=20');
    const later = await ask(page, 'Fourth #fake:rate=20 #fake:tokens=20');
    await cardWhen(page, later.post, (c) => c.dataset.status === 'queued' && /2nd/.test(c.textContent));
    assert.equal(await waiting.card.locator('[data-testid=phase]').textContent(), 'Queued · next');
    assert.equal(await later.card.locator('[data-testid=phase]').textContent(), 'Queued · 2nd');
    for (const width of [1280, 375]) {
      await page.setViewportSize({ width, height: 900 });
      const box = await later.card.boundingBox();
      assert.ok(box.height <= 64, `a compact line at ${width} px (${box.height} px)`);
      assert.equal(await later.card.locator('[data-testid=tokens], [role=progressbar]').count(), 0, 'no empty numbers');
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    await shots(page, 'card-queued', later.article);
    const queuedHeight = (await waiting.card.boundingBox()).height;
    for (const b of blockers) await api(page, `/api/v1/ai/generation/${b.post.job.id}/cancel`);
    await cardWhen(page, waiting.post, (c) => c.dataset.status === 'generating' || c.dataset.status === 'completed');
    await waiting.card.locator('.check').waitFor();
    assert.ok((await waiting.card.boundingBox()).height > queuedHeight, 'it grew into the card');
    await later.card.locator('.check').waitFor();
    await context.close();
  });

  test('8. focus: Stop moves it to Retry, Retry to Cancel, a Stop that disappears at Done to the card; names name the post', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await ask(page, 'Focus me please #fake:rate=10 #fake:tokens=200');
    await cardWhen(page, post, (c) => c.dataset.status === 'generating');
    const stop = card.locator('button[data-action=stop]');
    assert.equal(await stop.getAttribute('aria-label'), 'Stop Ada\'s AI post “Focus me please #fake:rate=10…”');
    await stop.focus();
    await page.keyboard.press('Enter');
    await cardWhen(page, post, (c) => c.dataset.status === 'cancelled');
    await page.waitForFunction(() => document.activeElement?.dataset.action === 'retry');
    assert.equal(await activeElement(page), 'button[retry]');
    await page.keyboard.press('Enter');
    await cardWhen(page, post, (c) => c.dataset.status !== 'cancelled');
    await page.waitForFunction(() => document.activeElement?.dataset.action === 'stop');
    assert.equal(await activeElement(page), 'button[stop]', 'Cancel (queued) or Stop (running) takes the focus');

    // A focused Stop that disappears because the answer is done leaves focus on the card.
    const quick = await ask(page, 'Quick one #fake:rate=15 #fake:tokens=20');
    await cardWhen(page, quick.post, (c) => c.dataset.status === 'generating');
    await quick.card.locator('button[data-action=stop]').focus();
    await quick.card.locator('.check').waitFor();
    await page.waitForFunction(() => document.activeElement !== document.body);
    assert.equal(await activeElement(page), 'div.ai-progress');
    assert.equal(await page.evaluate((id) => document.activeElement.closest('article')?.dataset.postId, quick.post.id), String(quick.post.id));
    await api(page, `/api/v1/ai/generation/${post.job.id}/cancel`);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('8. the model server away: the card waits, counting, and the answer comes once it is back', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { port } = ollama;
    await ollama.stop();
    let waiting;
    try {
      waiting = await ask(page, 'While it is away #fake:rate=20 #fake:tokens=20');
      await cardWhen(page, waiting.post, (c) => /^Waiting for the model server to come back · [1-9]\d* s$/.test(c.querySelector('[data-testid=phase]').textContent), 15_000);
      assert.equal(await waiting.card.getAttribute('data-status'), 'queued');
    } finally {
      ollama = await startFakeOllama([], { port });
    }
    await waiting.card.locator('.check').waitFor({ timeout: 30_000 });
    assert.doesNotMatch(await waiting.card.locator('[data-testid=phase]').textContent(), /Waiting for the model server/);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  // Last: it kills and restarts the shared server.
  test('2. while the stream is down every running card says "Reconnecting…"; after the restart, "Started again"', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const { post, card } = await ask(page, 'Survive #fake:rate=10 #fake:tokens=60');
    await cardWhen(page, post, (c) => Number.parseInt(c.querySelector('[data-testid=tokens]')?.textContent ?? '0', 10) >= 8);
    await server.kill9();
    await cardWhen(page, post, (c) => c.querySelector('[data-testid=phase]').textContent === 'Reconnecting…', 15_000);
    assert.match(await card.getAttribute('class'), /\boffline\b/);
    await shots(page, 'card-reconnecting', card);
    await server.restart();
    await cardWhen(page, post, (c) => c.dataset.status === 'generating' && c.querySelector('[data-testid=started-again]'), 30_000);
    assert.notEqual(await card.locator('[data-testid=phase]').textContent(), 'Reconnecting…');
    await card.locator('.check').waitFor({ timeout: 30_000 });
    await context.close();
  });
});
