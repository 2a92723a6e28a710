// The page's Content-Security-Policy in a real browser: its headers and nonce, and the
// harness's check that fails every browser test on a violation, shown to really catch one.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { assertNoCspViolations, newPage, startWall, stopWall, waitForHydration } from './harness.js';

let ollama;
let server;
let browser;

before(async () => {
  ({ ollama, server, browser } = await startWall());
});
after(() => stopWall({ ollama, server, browser }));

/** The nonce in a policy's script-src. */
function policyNonce(policy) {
  return /'nonce-([^']+)'/.exec(policy)?.[1];
}

describe('the Content-Security-Policy', () => {
  test('the page carries the headers, and its nonce is the hydration script\'s and fresh every time', async () => {
    const context = await browser.newContext();
    const page = await newPage(context);
    const nonces = [];
    for (const load of [() => page.goto(server.url), () => page.reload()]) {
      const response = await load();
      await waitForHydration(page);
      const headers = response.headers();
      assert.equal(headers['x-content-type-options'], 'nosniff');
      assert.equal(headers['referrer-policy'], 'same-origin');
      const policy = headers['content-security-policy'];
      for (const directive of [
        "default-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
      ]) {
        assert.ok(policy.split(';').map((d) => d.trim()).includes(directive), `${directive} in ${policy}`);
      }
      const nonce = policyNonce(policy);
      assert.match(policy, new RegExp(`script-src 'self' 'nonce-${nonce}' 'wasm-unsafe-eval'`));
      // The browser hides the attribute from the DOM; the property keeps the nonce.
      const scriptNonces = await page.evaluate(() => [...document.scripts].map((s) => s.nonce));
      assert.ok(scriptNonces.length > 0, 'the hydration script is on the page');
      assert.deepEqual(new Set(scriptNonces), new Set([nonce]), 'every script carries this response\'s nonce');
      nonces.push(nonce);
    }
    assert.notEqual(nonces[0], nonces[1], 'a fresh nonce for every response');
    assert.deepEqual(page.problems, []);
    await context.close();
  });

  test('a violation is caught: an injected inline script and an inline style fail the check', async () => {
    const context = await browser.newContext();
    const page = await newPage(context);
    await page.goto(server.url);
    await waitForHydration(page);
    const ran = await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.injected = true;';
      document.head.append(script);
      document.body.setAttribute('style', 'outline: 1px solid red');
      return window.injected === true;
    });
    assert.equal(ran, false, 'the policy blocked the injected script');
    // The check the harness runs after every test must fail on exactly these.
    let caught = '';
    for (let tries = 0; tries < 50 && !(/script-src/.test(caught) && /style-src/.test(caught)); tries += 1) {
      try {
        await assertNoCspViolations();
        await sleep(100);
      } catch (error) {
        caught += error.message;
      }
    }
    assert.match(caught, /script-src/, 'the harness caught the inline script');
    assert.match(caught, /style-src/, 'the harness caught the inline style');
    await context.close();
  });
});
