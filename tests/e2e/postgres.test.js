// The wall on PostgreSQL in a real browser: a post and an AI post made in the composer, the
// card live to its check mark, and everything still there after a reload and after a kill -9 of
// the server. The database is a fresh one on the server at TEST_POSTGRES_URL (scripts/test
// finds or starts one), dropped at the end.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { openPage, startWall, stopWall } from './harness.js';

const admin = process.env.TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const database = `aiwall_e2e_${process.pid}_${Date.now().toString(36)}`;
const cookieKey = 'ab'.repeat(64);

const psql = (sql) => execFileSync('psql', [admin, '-Atqc', sql], { encoding: 'utf8' });

let ollama;
let server;
let browser;

before(async () => {
  psql(`CREATE DATABASE ${database}`);
  const url = new URL(admin);
  url.pathname = `/${database}`;
  ({ ollama, server, browser } = await startWall({
    AIWALL_DATABASE__URL: url.toString(),
    AIWALL_SERVER__COOKIE_KEY: cookieKey,
  }));
});

after(async () => {
  await stopWall({ ollama, server, browser });
  psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
});

describe('on PostgreSQL', () => {
  test('a text post and an AI post, live to the check mark, survive a reload and a kill -9', async () => {
    const context = await browser.newContext();
    const page = await openPage(context, server.url);
    await page.locator('#composer-name').fill('Pia');
    await page.locator('input[name=kind][value=text]').check();
    await page.locator('#composer-text').fill('Hello from PostgreSQL');
    await page.locator('[data-testid=composer-submit]').click();
    await page.locator('article.post .post-text', { hasText: 'Hello from PostgreSQL' }).waitFor();

    await page.locator('input[name=kind][value=ai]').check();
    await page.locator('#composer-text').fill('Tell me about elephants #fake:tokens=30 #fake:rate=15');
    const created = page.waitForResponse((r) => r.url().endsWith('/api/v1/ai/posts') && r.request().method() === 'POST');
    await page.locator('[data-testid=composer-submit]').click();
    const response = await created;
    assert.equal(response.status(), 201, await response.text());
    const post = await response.json();
    const card = page.locator(`article.post[data-post-id="${post.id}"] .ai-progress`);
    // Live: the card is seen writing, then done, without a reload.
    await page.locator(`article.post[data-post-id="${post.id}"] .ai-progress[data-status=generating]`).waitFor({ timeout: 15_000 });
    await page.locator(`article.post[data-post-id="${post.id}"] .ai-progress[data-status=completed]`).waitFor({ timeout: 20_000 });
    const answer = await page.locator(`article.post[data-post-id="${post.id}"] .answer`).innerText();
    assert.ok(answer.length > 20, answer);

    await page.reload();
    await page.locator(`article.post[data-post-id="${post.id}"] .ai-progress[data-status=completed]`).waitFor();
    assert.equal(await page.locator(`article.post[data-post-id="${post.id}"] .answer`).innerText(), answer);

    await server.kill9();
    await server.restart();
    await page.reload();
    await page.locator('article.post .post-text', { hasText: 'Hello from PostgreSQL' }).waitFor();
    assert.equal(await page.locator(`article.post[data-post-id="${post.id}"] .answer`).innerText(), answer);
    assert.equal(await card.getAttribute('data-status'), 'completed');
    await context.close();
  });
});
