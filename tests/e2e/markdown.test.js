// The AI answer as safe Markdown while it streams and when it is done, in real headless Chromium
// against the release binary and the fake Ollama: Markdown renders live (an unfinished code
// fence as code), nothing moves at Done, a long answer is clamped with Show more and follows
// its newest line, tables, quotes, code with its language and a working Copy button, links in
// text posts, and markup in model output or a post that stays text.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { manyPosts, openPage, shots, startWall, stopWall, waitForHydration } from './harness.js';

let ollama;
let server;
let browser;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  ({ ollama, server, browser } = await startWall({ AIWALL_JOBS__CONCURRENCY: '8', ...manyPosts }));
});

after(() => stopWall({ ollama, server, browser }));

const openWall = (context, options) => openPage(context, server.url, options);

/**
 * The fake model's prompt that makes it write `output` once, at `rate` tokens a second. Only
 * what the directive needs is escaped (newlines, '#', '%'), so the prompt stays readable in
 * the screenshots.
 */
function promptFor(output, rate) {
  const words = output.trim().split(/\s+/).length;
  const escaped = output.replace(/%/g, '%25').replace(/\n/g, '%0A').replace(/#/g, '%23');
  return `Answer in Markdown #fake:rate=${rate} #fake:tokens=${words} #fake:output=${escaped}`;
}

/** Creates an AI post through the API with the page's cookie; resolves with its article. */
async function askAI(page, output, { rate = 0 } = {}) {
  const response = await page.request.post(`${server.url}/api/v1/ai/posts`, {
    data: { author_name: 'Tester', prompt: promptFor(output, rate) },
    headers: { Origin: server.url },
  });
  assert.equal(response.status(), 201, await response.text());
  const post = await response.json();
  const article = page.locator(`article.post[data-post-id="${post.id}"]`);
  await article.locator('.ai-progress').waitFor();
  return { post, article, answer: article.locator('[data-testid=answer]') };
}

const statusOf = (article) => article.locator('.ai-progress').getAttribute('data-status');

/**
 * Samples the answer on every frame until the job is completed; resolves with the last sample
 * before Done and the first after it. Positions are page coordinates; `fromCard` is the
 * answer's top relative to the progress card's bottom (the card above, being another
 * component, may change its height at Done).
 */
function acrossDone(page, postId) {
  return page.evaluate((id) => new Promise((resolve, reject) => {
    const article = document.querySelector(`article.post[data-post-id="${id}"]`);
    const take = () => {
      const answer = article.querySelector('[data-testid=answer]');
      const body = answer.querySelector('.answer-body');
      const box = answer.getBoundingClientRect();
      // Layout positions: the card's finishing animation scales it, which moves its drawn
      // box but not where anything is laid out.
      const card = article.querySelector('.ai-progress');
      return {
        status: card.dataset.status,
        x: answer.offsetLeft,
        y: box.top + window.scrollY,
        // The answer's place in the card (its offset parent), or under it.
        fromCard: answer.offsetParent === card ? answer.offsetTop : answer.offsetTop - (card.offsetTop + card.offsetHeight),
        width: answer.offsetWidth,
        scrollTop: body.scrollTop,
        blocks: [...body.children].map((b) => b.outerHTML),
        texts: [...body.children].map((b) => b.textContent.trim()),
        nodes: [...body.children],
      };
    };
    let last = null;
    const started = performance.now();
    const tick = () => {
      const now = take();
      if (now.status === 'completed') {
        if (!last) return reject(new Error('completed before any sample'));
        const sameNodes = last.nodes.length === now.nodes.length && last.nodes.every((n, i) => n === now.nodes[i]);
        delete last.nodes;
        delete now.nodes;
        return resolve({ before: last, after: now, sameNodes });
      }
      if (performance.now() - started > 60_000) return reject(new Error(`still ${now.status} after 60 s`));
      last = now;
      requestAnimationFrame(tick);
    };
    tick();
  }), postId);
}

describe('the answer as Markdown', () => {
  test('renders while it streams (an unfinished fence as code) and does not move at Done', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const output = [
      '## Lighthouses',
      '',
      'They are **tall** towers by the sea.',
      '',
      '- one light',
      '- two lights',
      '',
      '```rust',
      'fn main() {',
      '    println!("keep the light on");',
      '}',
      '```',
      '',
      'And that is the end of the answer.',
    ].join('\n');
    const { post, article, answer } = await askAI(page, output, { rate: 4 });

    // While the fence is open (its closing brace not written yet), the code is already code.
    await page.waitForFunction((id) => {
      const a = document.querySelector(`article.post[data-post-id="${id}"]`);
      const pre = a?.querySelector('[data-testid=answer] pre');
      return a?.querySelector('.ai-progress')?.dataset.status === 'generating' && pre && pre.textContent.includes('fn') && !pre.textContent.includes('}');
    }, post.id, { timeout: 30_000 });
    assert.equal(await statusOf(article), 'generating');
    assert.equal((await answer.locator('h2').textContent()).trim(), 'Lighthouses');
    assert.equal(await answer.locator('strong').textContent(), 'tall');
    assert.equal(await answer.locator('ul > li').count(), 2);
    assert.equal(await answer.locator('.code-lang').textContent(), 'rust');
    assert.equal(await answer.locator('pre code.language-rust').count(), 1);
    await shots(page, 'markdown-streaming', article);

    const { before: last, after: first, sameNodes } = await acrossDone(page, post.id);
    assert.equal(first.width, last.width, 'same width');
    assert.equal(first.x, last.x, 'same left edge');
    // offsetTop/offsetHeight are whole pixels: a card of another fractional height rounds apart.
    assert.ok(Math.abs(first.fromCard - last.fromCard) <= 1, `same place under the card: ${last.fromCard} -> ${first.fromCard}`);
    // The last words may come in the same frame as Done (the fake sends its final chunk right
    // after the last token): every settled block is the same, the last one at most grew.
    assert.deepEqual(first.blocks.slice(0, -1), last.blocks.slice(0, -1), 'the same settled blocks');
    assert.equal(first.blocks.length, last.blocks.length, 'no block added or removed at Done');
    assert.ok(first.texts.at(-1).startsWith(last.texts.at(-1)), `the last block at most grew: ${last.texts.at(-1)} -> ${first.texts.at(-1)}`);
    assert.ok(sameNodes, 'the very same elements: nothing re-created at Done');
    if (first.y !== last.y) console.log(`note: the progress card above changed height at Done (${first.y - last.y} px)`);
    assert.match(await answer.locator('p').last().textContent(), /end of the answer/);
    assert.equal(await answer.locator('pre').count(), 1);
    const job = await (await page.request.get(`${server.url}/api/v1/ai/generation/${post.job.id}`)).json();
    // Compared as the browser parses the server's HTML (it writes `data-copy` as `data-copy=""`).
    const shown = await answer.locator('.md-block').evaluateAll((els, server) => ({
      shown: els.map((e) => e.innerHTML),
      server: server.map((html) => Object.assign(document.createElement('div'), { innerHTML: html }).innerHTML),
    }), job.blocks);
    assert.deepEqual(shown.shown, shown.server, 'the page ends with exactly the blocks the server renders');
    await shots(page, 'markdown-finished', article);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('a long answer is clamped, follows its newest line, stays put at Done, and opens with Show more', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const lines = Array.from({ length: 45 }, (_, i) => `Paragraph ${i + 1} of a long answer about the sea.`);
    const { post, article, answer } = await askAI(page, lines.join('\n\n'), { rate: 60 });
    const body = answer.locator('.answer-body');
    const button = answer.locator('button.show-more');

    await page.waitForFunction((id) => document.querySelector(`article.post[data-post-id="${id}"] [data-testid=answer]`)?.classList.contains('clamped'), post.id, { timeout: 30_000 });
    assert.equal(await statusOf(article), 'generating', 'clamped while it is still written');
    assert.equal(await button.getAttribute('aria-expanded'), 'false');
    assert.equal(await button.getAttribute('aria-controls'), await body.getAttribute('id'));
    assert.equal((await button.textContent()).trim(), 'Show more');
    for (let i = 0; i < 5 && (await statusOf(article)) === 'generating'; i += 1) {
      const view = await body.evaluate((el) => {
        const box = el.getBoundingClientRect();
        const newest = el.lastElementChild.getBoundingClientRect();
        return { boxTop: box.top, boxBottom: box.bottom, newestTop: newest.top, newestBottom: newest.bottom, scrollTop: el.scrollTop, height: box.height };
      });
      assert.ok(view.height <= 24 * 16 + 1, `clamped to 24rem: ${view.height}`);
      assert.ok(view.scrollTop > 0, 'scrolled to follow the text');
      assert.ok(view.newestBottom <= view.boxBottom + 1 && view.newestTop >= view.boxTop - 1, `the newest line is visible: ${JSON.stringify(view)}`);
      await sleep(150);
    }

    const { before: last, after: first } = await acrossDone(page, post.id);
    assert.equal(first.scrollTop, last.scrollTop, 'at Done the clamped box stays where it was');
    assert.ok(Math.abs(first.fromCard - last.fromCard) <= 1, `same place under the card: ${last.fromCard} -> ${first.fromCard}`);
    assert.equal(await answer.locator('.md-block').count(), 45);
    await shots(page, 'markdown-long-clamped', article);

    await button.click();
    assert.equal(await button.getAttribute('aria-expanded'), 'true');
    assert.equal((await button.textContent()).trim(), 'Show less');
    const open = await body.evaluate((el) => ({ scroll: el.scrollHeight, client: el.clientHeight }));
    assert.ok(open.client >= open.scroll - 1 && open.client > 24 * 16, `all of it shows: ${JSON.stringify(open)}`);
    await button.click();
    assert.equal(await button.getAttribute('aria-expanded'), 'false');
    assert.ok((await body.evaluate((el) => el.clientHeight)) <= 24 * 16 + 1, 'clamped again');
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('tables, quotes, inline code, and code with its language and a Copy button', async () => {
    const context = await browser.newContext();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    const page = await openWall(context);
    const output = [
      'Use `cargo build` first.',
      '',
      '> A quote from the keeper.',
      '',
      '| Lighthouse | Country | Height in metres | Lit since | Range in nautical miles |',
      '|---|---|---|---|---|',
      '| Jeddah Light | Saudi Arabia | 133 | 1990 | 25 |',
      '| Île Vierge | France | 82.5 | 1902 | 27 |',
      '',
      '```python',
      'print("beam")',
      '```',
    ].join('\n');
    const { article, answer } = await askAI(page, output);
    await article.locator('.check').waitFor({ timeout: 20_000 });

    assert.equal(await answer.locator('table th').count(), 5);
    assert.equal(await answer.locator('table td').count(), 10);
    const border = await answer.locator('table td').first().evaluate((el) => getComputedStyle(el).borderTopWidth);
    assert.ok(Number.parseFloat(border) >= 1, `cells have borders: ${border}`);
    const quote = await answer.locator('blockquote').evaluate((el) => ({ rule: getComputedStyle(el).borderLeftWidth, color: getComputedStyle(el).color, text: getComputedStyle(el.closest('.answer-body')).color }));
    assert.ok(Number.parseFloat(quote.rule) >= 2, `a left rule: ${quote.rule}`);
    assert.notEqual(quote.color, quote.text, 'muted');
    const inline = await answer.locator('p code').evaluate((el) => getComputedStyle(el).backgroundColor);
    assert.notEqual(inline, 'rgba(0, 0, 0, 0)', 'inline code has a background');
    assert.equal(await answer.locator('.code-lang').textContent(), 'python');

    const copy = answer.locator('.code-block button[data-copy]');
    assert.equal((await copy.textContent()).trim(), 'Copy');
    await copy.click();
    await page.waitForFunction(() => document.querySelector('.code-block button[data-copy]')?.textContent === 'Copied');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'print("beam")\n');
    await page.waitForFunction(() => document.querySelector('.code-block button[data-copy]')?.textContent === 'Copy', null, { timeout: 4000 });

    // On a phone the wide table scrolls by itself; the page does not.
    await page.setViewportSize({ width: 375, height: 800 });
    const phone = await page.evaluate(() => ({ page: document.documentElement.scrollWidth - window.innerWidth }));
    assert.ok(phone.page <= 0, `no sideways scrolling of the page at 375 px (${phone.page} px)`);
    const table = await answer.locator('table').evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth, overflow: getComputedStyle(el).overflowX }));
    assert.ok(table.scroll > table.client && table.overflow === 'auto', `the table scrolls: ${JSON.stringify(table)}`);
    await page.setViewportSize({ width: 900, height: 1000 });
    await shots(page, 'markdown-table-code', article);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('a text post shows its web address as a safe link, and markup as text', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const dialogs = [];
    page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    const text = 'Lighthouse list: https://example.com/lights?sea=north&lit=1 (worth a look)\nsecond line <script>alert(1)</script><img src=x onerror=alert(2)> javascript:alert(3)';
    const response = await page.request.post(`${server.url}/api/v1/posts`, {
      data: { author_name: 'Tester', text },
      headers: { Origin: server.url },
    });
    assert.equal(response.status(), 201, await response.text());
    const post = await response.json();
    for (const when of ['live', 'after reload']) {
      const article = page.locator(`article.post[data-post-id="${post.id}"]`);
      const link = article.locator('.post-text a');
      await link.waitFor();
      assert.equal(await link.count(), 1, when);
      assert.equal(await link.getAttribute('href'), 'https://example.com/lights?sea=north&lit=1');
      assert.equal(await link.getAttribute('rel'), 'nofollow noopener noreferrer');
      assert.equal(await link.getAttribute('target'), '_blank');
      const shown = await article.locator('.post-text').textContent();
      assert.equal(shown, text, `${when}: the text as written, line break and markup included`);
      assert.equal(await article.locator('.post-text script, .post-text img').count(), 0);
      if (when === 'live') {
        await shots(page, 'text-post-link', article);
        await page.reload();
        await waitForHydration(page);
      }
    }
    await sleep(300);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('markup in the model output stays text, while it streams and after', async () => {
    const context = await browser.newContext();
    const page = await openWall(context);
    const dialogs = [];
    page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    const output = [
      'Look: <img src=x onerror=alert(1)> <script>alert(2)</script> [x](javascript:alert(3)) ![i](https://example.com/i.png)',
      '',
      '<div onclick="alert(4)">block</div>',
      '',
      '```"><img src=x onerror=alert(5)>',
      'code',
      '```',
      '',
      'The **end**.',
    ].join('\n');
    const { article, answer } = await askAI(page, output, { rate: 20 });
    let sampled = 0;
    while ((await statusOf(article)) !== 'completed') {
      const bad = await answer.locator('img, script, [onclick], a[href^="javascript"]').count();
      assert.equal(bad, 0, 'no element made from the model output while streaming');
      sampled += 1;
      await sleep(50);
    }
    assert.ok(sampled > 3, `sampled while it streamed (${sampled})`);
    assert.equal(await article.locator('img, script, [onclick]').count(), 0);
    assert.equal(await answer.locator('a[href^="javascript"]').count(), 0);
    assert.match(await answer.textContent(), /<img src=x onerror=alert\(1\)>/);
    assert.match(await answer.textContent(), /<div onclick="alert\(4\)">/);
    assert.equal(await answer.locator('strong').textContent(), 'end');
    await sleep(300);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(page.problems, []);
    await context.close();
  });
});
