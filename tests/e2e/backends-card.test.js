// The card and the model picker with the backends of issue 12: a thinking model's folded
// reasoning with its timer ticking, then the answer, then "Thought for N s · M tokens"; a
// llama.cpp-style server's "Reading the prompt: N %" with its own bar, then tokens; a job
// waiting for a free slot on a named server in a pool of two while a job for the other runs; the statistics an OpenAI-compatible server did not
// report shown as "—". Each new state is photographed (tests/e2e/screenshots).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, manyPosts, openPage, shots, startFakeOllama, startServer } from './harness.js';

/** The wall at 1280 px as an author (a first post gives the context its author cookie). */
function openWall(context, server) {
  return openPage(context, server.url, {
    width: 1280,
    height: 900,
    beforeLoad: async (page) => {
      const hello = await page.request.post(`${server.url}/api/v1/posts`, {
        data: { author_name: 'Ada', text: 'Hello from the tests' },
        headers: { Origin: server.url },
      });
      assert.equal(hello.status(), 201, await hello.text());
    },
  });
}

/** Creates an AI post through the API with the page's own cookie; resolves once its card shows. */
async function ask(page, server, prompt, extra = {}) {
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

/**
 * Resolves with the value once `probe(card element)` returns something truthy in the page.
 * `probe` is a function, or its source text (to carry a value from here into it).
 */
async function cardWhen(page, post, probe, timeout = 30_000) {
  // Compiled here in Node: the page's Content-Security-Policy forbids `new Function` there.
  const fn = new Function(
    'id',
    `const card = document.querySelector('article.post[data-post-id="' + id + '"] .ai-progress');
     return card ? (${probe})(card) : null;`,
  );
  const handle = await page.waitForFunction(fn, post.id, { timeout });
  return handle.jsonValue();
}

const THINKING = /^Thinking · (\d+) s · (\d+) tokens?$/;
const THOUGHT = /^Thought for ([\d.]+|\d+ min \d+) s · (\d+) tokens?$/;

describe('a thinking model on Ollama', () => {
  let ollama;
  let server;
  let browser;

  before(async () => {
    // The fake's llama3.2 models have Ollama's "thinking" capability.
    ollama = await startFakeOllama(['--thinking-models', 'llama3.2']);
    server = await startServer({
      env: { AIWALL_OLLAMA__URL: ollama.url, AIWALL_OLLAMA__ALLOWED_MODELS: '["llama3.2:1b","qwen2.5:0.5b"]', ...manyPosts },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await ollama?.stop();
  });

  test('the card folds the reasoning with its timer ticking, then the answer, then "Thought for N s · M tokens"', async () => {
    const context = await browser.newContext();
    const page = await openWall(context, server);
    // 80 reasoning tokens at 8 a second: ten seconds of thinking, then a short answer.
    const { post, article, card } = await ask(page, server, 'Think it over #fake:think=80 #fake:rate=8 #fake:tokens=16');
    const reasoning = card.locator('[data-testid=reasoning]');
    const summary = card.locator('[data-testid=reasoning-summary]');

    // While it thinks: a closed section whose line counts seconds and tokens, and no answer yet.
    const first = await cardWhen(page, post, (c) => {
      const line = c.querySelector('[data-testid=reasoning-summary]')?.textContent ?? '';
      return /^Thinking · \d+ s · \d+ tokens?$/.test(line) && line;
    });
    assert.equal(await reasoning.getAttribute('open'), null, 'closed by default');
    assert.equal(await card.locator('[data-testid=answer]').isHidden(), true, 'no answer while it thinks');
    assert.equal(await card.getAttribute('data-status'), 'generating');
    const startedAt = Number(THINKING.exec(first)[1]);
    // The seconds tick on the page's clock while it thinks.
    await cardWhen(page, post, (c) => {
      const m = /^Thinking · (\d+) s/.exec(c.querySelector('[data-testid=reasoning-summary]')?.textContent ?? '');
      return m && Number(m[1]) >= 2 && m[1];
    }, 10_000);
    const later = THINKING.exec(await summary.textContent());
    assert.ok(later, 'still thinking two seconds in');
    assert.ok(Number(later[1]) > startedAt, `the timer ticked: ${first} → ${later[0]}`);
    assert.ok(Number(later[2]) >= 2, `the tokens count: ${later[0]}`);
    assert.doesNotMatch(await card.locator('[data-testid=phase]').textContent(), /^No new tokens/, 'thinking is no stall');
    await shots(page, 'card-thinking', article);

    // Opened: the reasoning itself, live, as plain text.
    await summary.click();
    assert.equal(await reasoning.getAttribute('open'), '');
    const text = card.locator('[data-testid=reasoning-text]');
    const shown = await text.textContent();
    assert.match(shown, /^Let me think/);
    await cardWhen(page, post, `(c) => (c.querySelector('[data-testid=reasoning-text]')?.textContent.length ?? 0) > ${shown.length}`);
    assert.equal(
      await text.evaluate((el) => [...el.childNodes].every((n) => n.nodeType === Node.TEXT_NODE)),
      true,
      'text nodes only, never markup',
    );
    await shots(page, 'card-thinking-open', article);

    // The answer follows; the section says how long it thought, and stays open as left.
    await card.locator('.check').waitFor({ timeout: 30_000 });
    const done = THOUGHT.exec(await summary.textContent());
    assert.ok(done, `finished: ${await summary.textContent()}`);
    assert.equal(Number(done[2]), 80, 'every reasoning token counted');
    assert.equal(await reasoning.getAttribute('open'), '', 'still open as the reader left it');
    const answer = await card.locator('[data-testid=answer]').textContent();
    assert.ok(answer.trim().length > 0, 'the answer is there');
    assert.doesNotMatch(answer, /Let me think/, 'the reasoning is kept apart from the answer');
    const box = await reasoning.boundingBox();
    const answerBox = await card.locator('[data-testid=answer]').boundingBox();
    assert.ok(box.y < answerBox.y, 'the reasoning comes above the answer');
    assert.equal(await card.locator('[data-testid=stats] [data-stat=reasoning]').textContent(), '80 tokens');
    await shots(page, 'card-thought-open', article);
    await summary.click();
    await shots(page, 'card-thought', article);

    // A fresh page has it from the server: folded, with the same line, and its text once opened
    // (a wall may leave a finished job's reasoning out of the page; the card then loads it).
    const again = await openPage(context, server.url, { width: 1280, height: 900 });
    const reloaded = again.locator(`article.post[data-post-id="${post.id}"] .ai-progress`);
    assert.equal(await reloaded.locator('[data-testid=reasoning-summary]').textContent(), await summary.textContent());
    assert.equal(await reloaded.locator('[data-testid=reasoning]').getAttribute('open'), null);
    await reloaded.locator('[data-testid=reasoning-summary]').click();
    await again.waitForFunction(
      (id) => /^Let me think/.test(document.querySelector(`article.post[data-post-id="${id}"] [data-testid=reasoning-text]`)?.textContent ?? ''),
      post.id,
    );
    assert.deepEqual(page.problems, []);
    assert.deepEqual(again.problems, []);
    await context.close();
  });

  test('a model that does not think has no reasoning section', async () => {
    const context = await browser.newContext();
    const page = await openWall(context, server);
    const { card } = await ask(page, server, 'Plain #fake:think=10 #fake:rate=40 #fake:tokens=10', { model: 'qwen2.5:0.5b' });
    await card.locator('.check').waitFor();
    assert.equal(await card.locator('[data-testid=reasoning]').count(), 0);
    assert.doesNotMatch(await card.locator('[data-testid=answer]').textContent(), /Let me think/);
    assert.deepEqual(page.problems, []);
    await context.close();
  });
});

describe('an OpenAI-compatible server (llama.cpp)', () => {
  let fake;
  let server;
  let browser;

  before(async () => {
    fake = await startFakeOllama(['--api', 'openai', '--openai-flavor', 'llamacpp']);
    server = await startServer({
      env: {
        AIWALL_BACKENDS: `[{name="llama", kind="openai", url="${fake.url}"}]`,
        AIWALL_GENERATION__ALLOWED_MODELS: '["llama3.2:1b","mistral:7b"]',
        ...manyPosts,
      },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await fake?.stop();
  });

  test('the card shows "Reading the prompt: N %" with its own bar, then tokens; the server is named', async () => {
    const context = await browser.newContext();
    const page = await openWall(context, server);
    // At least ten words: the fake reports the prompt in ten steps over five seconds.
    const { post, article, card } = await ask(
      page,
      server,
      'Please read this rather long prompt slowly and carefully, word by word, before answering it #fake:prompt-eval-ms=5000 #fake:rate=10 #fake:tokens=20',
    );
    const first = await cardWhen(page, post, (c) => {
      const m = /^Reading the prompt: (\d+) %$/.exec(c.querySelector('[data-testid=phase]')?.textContent ?? '');
      return m && Number(m[1]) > 0 && Number(m[1]);
    });
    assert.equal(await card.getAttribute('data-status'), 'loading');
    const bar = card.locator('[data-testid=prompt-bar]');
    assert.equal(await bar.getAttribute('role'), 'progressbar');
    const now = Number(await bar.getAttribute('aria-valuenow'));
    assert.ok(now >= first && now < 100, `the bar says what the words say (${now} %, ${first} %)`);
    assert.equal(await card.locator('.bar[role=progressbar]').count(), 0, 'one bar at a time');
    assert.equal(await card.locator('[data-testid=backend]').textContent(), ' · llama', 'the model server, by its name');
    await shots(page, 'card-reading-prompt', article);
    // It moves on.
    await cardWhen(page, post, `(c) => Number(c.querySelector('[data-testid=prompt-bar]')?.getAttribute('aria-valuenow') ?? 100) > ${now}`);

    // Then tokens, and the prompt's bar is gone.
    await cardWhen(page, post, (c) => c.dataset.status === 'generating' && Number.parseInt(c.querySelector('[data-testid=tokens]')?.textContent ?? '0', 10) >= 3);
    assert.equal(await bar.count(), 0);
    assert.doesNotMatch(await card.locator('[data-testid=phase]').textContent(), /Reading the prompt/);
    await card.locator('.check').waitFor({ timeout: 30_000 });

    // llama.cpp's timings fill the statistics; what it does not report is "—", never 0.
    const stats = card.locator('[data-testid=stats]');
    await card.locator('[data-testid=summary]').click();
    assert.equal(await stats.locator('[data-stat=backend]').textContent(), 'llama');
    assert.equal(await stats.locator('[data-stat=output]').textContent(), '20 tokens');
    assert.match(await stats.locator('[data-stat=prompt-eval]').textContent(), /^[\d.]+ s$/);
    assert.equal(await stats.locator('[data-stat=load]').textContent(), '—', 'llama.cpp does not say how long loading took');
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('a server that reports only its usage: the summary leaves the rest out and the details show "—"', async () => {
    const context = await browser.newContext();
    const page = await openWall(context, server);
    const { article, card } = await ask(page, server, 'Usage only #fake:flavor=vllm #fake:rate=40 #fake:tokens=12');
    await card.locator('.check').waitFor({ timeout: 30_000 });
    const line = await card.locator('[data-testid=summary]').textContent();
    assert.match(line, /^12 tokens · ([\d.]+ tok\/s · )?[\d.]+ s · first token [\d.]+ s$/, line);
    assert.doesNotMatch(line, /—| 0 tok/, line);
    await card.locator('[data-testid=summary]').click();
    const stats = card.locator('[data-testid=stats]');
    for (const stat of ['load', 'prompt-eval']) {
      assert.equal(await stats.locator(`[data-stat=${stat}]`).textContent(), '—', `${stat} is not reported by vLLM`);
    }
    await shots(page, 'card-finished-usage-only', article);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('the model picker keeps a model no server has selectable and says its post will wait', async () => {
    const context = await browser.newContext();
    const page = await openWall(context, server);
    await page.locator('input[name=kind][value=ai]').check();
    await page.locator('#composer-model option[value="mistral:7b"]').waitFor({ state: 'attached' });
    const options = await page.locator('#composer-model option').evaluateAll((os) => Object.fromEntries(os.map((o) => [o.value, o.textContent])));
    assert.deepEqual(options, { 'llama3.2:1b': 'llama3.2:1b', 'mistral:7b': 'mistral:7b · not available now' });
    await page.locator('#composer-model').selectOption('mistral:7b');
    await page.locator('[data-testid=model-unavailable]').waitFor();
    await shots(page, 'composer-model-not-available', page.locator('[data-testid=composer]'));
    assert.deepEqual(page.problems, []);
    await context.close();
  });
});

describe('a pool of two servers', () => {
  let llama;
  let gpu;
  let server;
  let browser;

  before(async () => {
    // llama3.2:1b lives only on "llama" (llama.cpp-style); qwen2.5:0.5b only on "gpu" (Ollama).
    llama = await startFakeOllama(['--api', 'openai', '--openai-flavor', 'llamacpp', '--models', 'llama3.2:1b']);
    gpu = await startFakeOllama(['--api', 'ollama', '--models', 'qwen2.5:0.5b']);
    server = await startServer({
      env: {
        AIWALL_BACKENDS: `[{name="llama", kind="openai", url="${llama.url}"}, {name="gpu", kind="ollama", url="${gpu.url}"}]`,
        AIWALL_GENERATION__ALLOWED_MODELS: '["llama3.2:1b","qwen2.5:0.5b"]',
        ...manyPosts,
      },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await gpu?.stop();
    await llama?.stop();
  });

  test('a queued job says it waits for a free slot on the named server, and a later job for the free one runs at once', async () => {
    const context = await browser.newContext();
    const page = await openWall(context, server);
    // Each server takes one generation at a time (the default concurrency).
    const busy = await ask(page, server, 'Long one #fake:rate=5 #fake:tokens=200', { model: 'llama3.2:1b' });
    await cardWhen(page, busy.post, (c) => c.dataset.status === 'generating');
    const next = await ask(page, server, 'Next one #fake:rate=40 #fake:tokens=5', { model: 'llama3.2:1b' });
    await cardWhen(page, next.post, (c) => c.querySelector('[data-testid=phase]')?.textContent === 'Next · waiting for a free slot on llama');
    await shots(page, 'card-waiting-for-slot', next.card);
    // No head-of-line blocking: a job for the idle server goes past the waiting one.
    const other = await ask(page, server, 'Other one #fake:rate=40 #fake:tokens=5', { model: 'qwen2.5:0.5b' });
    await other.card.locator('.check').waitFor({ timeout: 30_000 });
    assert.equal(await next.card.getAttribute('data-status'), 'queued');
    await page.request.post(`${server.url}/api/v1/ai/generation/${busy.post.job.id}/cancel`, { headers: { Origin: server.url } });
    await next.card.locator('.check').waitFor({ timeout: 30_000 });
    assert.deepEqual(page.problems, []);
    await context.close();
  });
});
