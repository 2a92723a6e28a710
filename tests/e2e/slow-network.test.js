// The wall's first load on a slow mobile network: Chromium's "Slow 4G" (DevTools' preset:
// 562.5 ms round trip, 1.44 Mbit/s down, 675 kbit/s up) through the DevTools protocol, no cache.
// The server-rendered posts must be readable before the wasm has arrived; the test prints when
// the page painted, when the posts could be read, what each file weighed on the wire and when the
// page was hydrated (the figures the README gives).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { newPage, startWall, stopWall, waitForHydration } from './harness.js';

const SLOW_4G = {
  offline: false,
  latency: 562.5,
  downloadThroughput: (1.6 * 1000 * 1000 / 8) * 0.9,
  uploadThroughput: (750 * 1000 / 8) * 0.9,
};

let wall;

before(async () => {
  wall = await startWall();
});

after(() => stopWall(wall ?? {}));

describe('the first load on a slow network', () => {
  test('shows readable posts before the wasm arrives, then hydrates', async () => {
    const { server, browser } = wall;
    const label = `read me before the wasm ${Date.now().toString(36)}`;
    for (const text of ['an older post', label]) {
      const res = await fetch(`${server.url}/api/v1/posts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: server.url },
        body: JSON.stringify({ author_name: 'Slow', text }),
      });
      assert.equal(res.status, 201, await res.text());
    }

    const context = await browser.newContext();
    const page = await newPage(context);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    await cdp.send('Network.emulateNetworkConditions', SLOW_4G);

    await page.goto(server.url, { waitUntil: 'commit', timeout: 60_000 });
    await page.locator('article.post .post-text', { hasText: label }).waitFor({ timeout: 60_000 });
    const readable = await page.evaluate(() => ({
      at: performance.now(),
      hydrated: document.body?.dataset.hydrated === 'true',
      wasm: performance.getEntriesByType('resource').some((e) => e.name.endsWith('.wasm')),
    }));
    assert.equal(readable.hydrated, false, 'read before hydration');
    assert.equal(readable.wasm, false, 'read before the wasm arrived');

    await waitForHydration(page, 60_000);
    const loaded = await page.evaluate(() => {
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const files = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
        .map((e) => ({
          name: new URL(e.name).pathname,
          wire: e.transferSize,
          size: e.decodedBodySize,
          end: e.responseEnd,
        }));
      return { paint: paint?.startTime, hydrated: performance.now(), files };
    });
    assert.deepEqual(page.problems, []);
    const wasm = loaded.files.find((f) => f.name.endsWith('.wasm'));
    assert.ok(wasm, JSON.stringify(loaded.files));
    assert.ok(loaded.paint < wasm.end, `painted at ${loaded.paint} ms, before the wasm at ${wasm.end} ms`);

    const ms = (v) => `${Math.round(v)} ms`;
    const kb = (v) => `${(v / 1024).toFixed(1)} KiB`;
    console.log(`Slow 4G first load: first contentful paint ${ms(loaded.paint)}; posts readable at ${ms(readable.at)}; hydrated at ${ms(loaded.hydrated)}`);
    for (const f of loaded.files.filter((f) => /(^\/$|\.(css|js|wasm)$)/.test(f.name))) {
      console.log(`  ${f.name}: ${kb(f.wire)} on the wire (${kb(f.size)} decoded), done at ${ms(f.end)}`);
    }
    await context.close();
  });
});
