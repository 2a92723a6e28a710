// Honest time and a fair queue (issue 15), as people see it: once the model has a history, a
// queued card says when it starts and when it will be done, a writing card gives its time left with a range, and two
// writers take turns: Bob's first post goes ahead of Ada's third, whose card says so calmly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { manyPosts, openPage, shots, startWall, stopWall } from './harness.js';

let ollama;
let server;
let browser;

before(async () => {
  ({ ollama, server, browser } = await startWall({ AIWALL_JOBS__CONCURRENCY: '1', ...manyPosts }));
});

after(() => stopWall({ ollama, server, browser }));

/** A page of the wall as `name`, who has posted before (and so has the author cookie). */
async function writer(name) {
  const context = await browser.newContext();
  const page = await openPage(context, server.url, {
    width: 1280,
    height: 900,
    beforeLoad: async (page) => {
      const hello = await page.request.post(`${server.url}/api/v1/posts`, {
        data: { author_name: name, text: `Hello, I am ${name}` },
        headers: { Origin: server.url },
      });
      assert.equal(hello.status(), 201, await hello.text());
    },
  });
  page.writer = name;
  return page;
}

/** An AI post by the page's writer; resolves with the post and its card. */
async function ask(page, prompt) {
  const response = await page.request.post(`${server.url}/api/v1/ai/posts`, {
    data: { author_name: page.writer, prompt },
    headers: { Origin: server.url },
  });
  assert.equal(response.status(), 201, await response.text());
  const post = await response.json();
  const card = page.locator(`article.post[data-post-id="${post.id}"] .ai-progress`);
  await card.waitFor();
  return { post, card };
}

/** Resolves once the post's card is in `status` (its data-status). */
function cardIn(page, post, status, timeout = 30_000) {
  return page.waitForFunction(
    ([id, status]) => document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status === status,
    [post.id, status],
    { timeout },
  );
}

/** Resolves once the post's card says, in its phase line, what `pattern` (a regex source) matches. */
function phaseSays(page, post, pattern, timeout = 15_000) {
  return page.waitForFunction(
    ([id, pattern]) => new RegExp(pattern).test(document.querySelector(`article.post[data-post-id="${id}"] [data-testid=phase]`)?.textContent ?? ''),
    [post.id, pattern],
    { timeout },
  );
}

/** The job's state from the API. */
async function job(page, post) {
  const response = await page.request.get(`${server.url}/api/v1/ai/generation/${post.job.id}`);
  assert.equal(response.status(), 200);
  return response.json();
}

describe('honest time and a fair queue', () => {
  test('a queued card says when it starts, a writing card gives a range, writers take turns', async () => {
    const ada = await writer('Ada');
    // Twelve answers of 20 to 130 tokens at 100 tok/s for the model to learn from.
    const history = [];
    for (let i = 0; i < 12; i++) {
      history.push((await ask(ada, `history ${i} #fake:rate=100 #fake:tokens=${20 + i * 10}`)).post);
    }
    for (const post of history) await cardIn(ada, post, 'completed');

    // Ada's first writes for about eight seconds; her second and third wait behind it.
    const first = await ask(ada, 'A long one #fake:rate=10 #fake:tokens=80');
    const second = await ask(ada, 'Second #fake:rate=100 #fake:tokens=40');
    const third = await ask(ada, 'Third #fake:rate=100 #fake:tokens=40');
    await phaseSays(ada, third.post, '^Queued · 2nd');

    // Bob's first post goes ahead of Ada's third: everyone's second round before her third.
    const bob = await writer('Bob');
    const bobs = await ask(bob, 'Bob asks #fake:rate=100 #fake:tokens=40');
    const phase = (page, post) => page.locator(`article.post[data-post-id="${post.id}"] [data-testid=phase]`);
    await phaseSays(bob, bobs.post, '^Queued · 2nd · starts in about \\d+ s(, done in about \\d+ s)?$');
    await phaseSays(ada, third.post, "^Queued · 3rd · another writer's turn came first · starts in about \\d+ s(, done in about \\d+ s)?$");
    const [bobSays, adaSays] = [await phase(bob, bobs.post).textContent(), await phase(ada, third.post).textContent()];
    console.log(`queued: Bob's "${bobSays}", Ada's third "${adaSays}"`);
    const seconds = (said) => Number(said.match(/starts in about (\d+) s/)[1]);
    assert.ok(seconds(bobSays) <= seconds(adaSays), 'the 2nd starts no later than the 3rd');
    await shots(bob, 'card-queued-starts-in', bobs.card.locator('xpath=ancestor::article'));

    // The writing card: its time left and the range it falls in 8 times out of 10.
    const eta = ada.locator(`article.post[data-post-id="${first.post.id}"] [data-testid=eta]`);
    await eta.waitFor({ timeout: 15_000 });
    const said = await eta.textContent();
    console.log(`writing: "${said}"`);
    assert.match(said, /^about \d+ s left \(\d+–\d+ s\)$/);
    await shots(ada, 'card-writing-range', first.card.locator('xpath=ancestor::article'));

    // They run in their places' order: Ada's second, Bob's first, Ada's third.
    const ends = [];
    for (const post of [second.post, bobs.post, third.post]) {
      await cardIn(ada, post, 'completed', 60_000);
      ends.push((await job(ada, post)).progress.last_update_at);
    }
    assert.ok(ends[0] < ends[1] && ends[1] < ends[2], `finished in turn: ${ends}`);
  });
});
