// Several instances on one PostgreSQL behind a real nginx, in a real browser: the page and its
// requests go to one instance, its live stream to another, and the job runs on a third (the
// only one that reaches the model server). The card still goes live to its check mark, a Stop
// pressed on the page stops the run elsewhere, and a Retry runs it again; then, behind the
// round robin of deploy/nginx.conf, a reload of the wall shows the same answers from any
// instance.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, openPage, repoRoot, startFakeOllama, startNginx, startServer } from './harness.js';

const admin = process.env.TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const database = `aiwall_e2e_lb_${process.pid}_${Date.now().toString(36)}`;
const psql = (sql) => execFileSync('psql', [admin, '-Atqc', sql], { encoding: 'utf8' });

let ollama;
let browser;
const servers = {};
const proxies = [];

/** The nginx settings every location here shares with deploy/nginx.conf. */
const proxied = `
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_buffering off;
        proxy_cache off;
        proxy_read_timeout 1h;`;

before(async () => {
  psql(`CREATE DATABASE ${database}`);
  const url = new URL(admin);
  url.pathname = `/${database}`;
  ollama = await startFakeOllama();
  const common = {
    AIWALL_DATABASE__URL: url.toString(),
    AIWALL_SERVER__COOKIE_KEY: 'cd'.repeat(64),
    AIWALL_SERVER__TRUSTED_PROXIES: '["127.0.0.1"]',
    AIWALL_JOBS__LEASE_MS: '3000',
    AIWALL_JOBS__LEASE_RENEW_MS: '1000',
  };
  // Only the runner reaches the model server; the others show and take requests.
  servers.runner = await startServer({ env: { ...common, AIWALL_SERVER__INSTANCE_ID: 'runner', AIWALL_OLLAMA__URL: ollama.url } });
  servers.streams = await startServer({ env: { ...common, AIWALL_SERVER__INSTANCE_ID: 'streams' } });
  servers.front = await startServer({ env: { ...common, AIWALL_SERVER__INSTANCE_ID: 'front' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const proxy of proxies) await proxy.stop();
  for (const server of Object.values(servers)) await server.stop();
  await ollama?.stop();
  psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
});

describe('several instances behind nginx', () => {
  test('the card goes live, stops and runs again while every request goes to another instance', async () => {
    const proxy = await startNginx(
      (port) => `
    server {
        listen 127.0.0.1:${port};
        location /api/v2/wall/events { proxy_pass ${servers.streams.url};${proxied} }
        location / { proxy_pass ${servers.front.url};${proxied} }
    }`,
    );
    proxies.push(proxy);
    const context = await browser.newContext();
    const page = await openPage(context, proxy.url);
    const until = (id, wanted, timeout = 30_000) =>
      page.waitForFunction(
        ([id, wanted]) => document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status === wanted,
        [id, wanted],
        { timeout },
      );

    await page.locator('#composer-name').fill('Lou');
    await page.locator('input[name=kind][value=ai]').check();
    await page.locator('#composer-text').fill('Across instances #fake:tokens=40 #fake:rate=20');
    const created = page.waitForResponse((r) => r.url().endsWith('/api/v1/ai/posts') && r.request().method() === 'POST');
    await page.locator('[data-testid=composer-submit]').click();
    const response = await created;
    assert.equal(response.status(), 201, await response.text());
    const post = await response.json();
    await until(post.id, 'generating');
    await until(post.id, 'completed');
    const answer = await page.locator(`article.post[data-post-id="${post.id}"] .answer`).innerText();
    assert.ok(answer.split(/\s+/).length >= 20, answer);

    // Stop, pressed on the page (a request to the front instance) while the runner writes.
    await page.locator('#composer-text').fill('Stop me across #fake:rate=5 #fake:tokens=300');
    const second = page.waitForResponse((r) => r.url().endsWith('/api/v1/ai/posts') && r.request().method() === 'POST');
    await page.locator('[data-testid=composer-submit]').click();
    const slow = await (await second).json();
    await until(slow.id, 'generating');
    const card = page.locator(`article.post[data-post-id="${slow.id}"] .ai-progress`);
    await card.locator('button[data-action=stop]').click();
    await until(slow.id, 'cancelled');
    assert.match(await card.locator('.ai-error').textContent(), /Stopped/);
    const runnerLog = servers.runner.output();
    assert.match(runnerLog, /job stopped by its author/, 'the runner stopped it');
    await card.locator('button[data-action=retry]').click();
    await until(slow.id, 'generating');
    // And stopped again, so that the wall stands still for the next test.
    await card.locator('button[data-action=stop]').click();
    await until(slow.id, 'cancelled');

    await context.close();

    // Which instance served what (nginx logs a request when it ends: the stream, at the close).
    let lines = [];
    for (let tries = 0; tries < 50 && !lines.some((l) => l.includes('/api/v2/wall/events')); tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      lines = (await proxy.accessLog()).trim().split('\n');
    }
    const upstream = (what) => [...new Set(lines.filter((l) => l.includes(what)).map((l) => l.split(' ')[0]))];
    assert.deepEqual(upstream('GET /api/v2/wall/events'), [`127.0.0.1:${servers.streams.port}`]);
    assert.deepEqual(upstream('POST /api/v1/ai/posts'), [`127.0.0.1:${servers.front.port}`]);
    assert.deepEqual(upstream('/cancel'), [`127.0.0.1:${servers.front.port}`]);
  });

  test('behind deploy/nginx.conf, a reload from any instance shows the same wall', async () => {
    const deployed = readFileSync(path.join(repoRoot, 'deploy/nginx.conf'), 'utf8');
    const listed = deployed.split('\n').filter((l) => l.trim().startsWith('server 127.0.0.1:'));
    const ports = [servers.runner.port, servers.streams.port, servers.front.port];
    assert.equal(listed.length, ports.length, 'deploy/nginx.conf lists three instances');
    const proxy = await startNginx((port) => {
      let site = deployed.replace('listen 80;', `listen 127.0.0.1:${port};`);
      listed.forEach((line, i) => {
        site = site.replace(line, `    server 127.0.0.1:${ports[i]};`);
      });
      return site;
    });
    proxies.push(proxy);
    const context = await browser.newContext();
    const page = await openPage(context, proxy.url);
    // Each post, its card's state and its answer, as the page shows them.
    const wall = () =>
      page.evaluate(() =>
        [...document.querySelectorAll('article.post')].map((post) => ({
          id: post.dataset.postId,
          status: post.querySelector('.ai-progress')?.dataset.status,
          answer: post.querySelector('.answer')?.innerText,
        })),
      );
    const seen = [];
    for (let i = 0; i < 3; i += 1) {
      await page.reload();
      await page.locator('article.post .ai-progress').first().waitFor();
      seen.push(await wall());
    }
    assert.equal(seen[0].length, 2, JSON.stringify(seen[0]));
    assert.deepEqual(seen[0].map((p) => p.status).sort(), ['cancelled', 'completed']);
    assert.deepEqual(seen[1], seen[0]);
    assert.deepEqual(seen[2], seen[0]);
    const served = new Set(
      (await proxy.accessLog())
        .split('\n')
        .filter((l) => l.includes('"GET / '))
        .map((l) => l.split(' ')[0]),
    );
    assert.ok(served.size >= 2, `pages served by ${[...served]}`);
    await context.close();
  });
});
