// The release binary is the whole product: copied alone into an empty directory it serves the
// wall and every asset the page needs, and creates its database there.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { startServer } from './harness.js';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

/** Same-origin URLs of scripts, stylesheets, preloads and dynamic imports in the page. */
function assetUrls(html, base) {
  const found = new Set();
  const patterns = [
    /<link\b[^>]*\bhref\s*=\s*["']([^"']+)["']/gi,
    /<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']/gi,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\bfrom\s*["']([^"']+\.js)["']/g,
    /\bmodule_or_path\s*:\s*["']([^"']+)["']/g,
    /["']([^"'\s]+\.(?:wasm|js|css))["']/g,
  ];
  for (const pattern of patterns) {
    for (const match of html.matchAll(pattern)) {
      const url = new URL(match[1], base);
      if (url.origin === new URL(base).origin && /\.(wasm|js|css)$/.test(url.pathname)) found.add(url.href);
    }
  }
  return [...found];
}

const expectedType = {
  wasm: /^application\/wasm\b/,
  js: /^(text|application)\/javascript\b/,
  css: /^text\/css\b/,
};

test('the copied binary serves the wall page', async () => {
  const res = await fetch(`${server.url}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html\b/);
  const html = await res.text();
  assert.match(html, /<!doctype html>/i);
  assert.match(html, /data-testid=["']?composer\b/, 'the page renders the composer of the wall');
});

test('every script, stylesheet and wasm module the page references is served with its type', async () => {
  const html = await (await fetch(`${server.url}/`)).text();
  const urls = assetUrls(html, server.url);
  const kinds = new Set(urls.map((u) => path.extname(new URL(u).pathname).slice(1)));
  for (const kind of ['js', 'wasm', 'css']) {
    assert.ok(kinds.has(kind), `the page references a .${kind} file (found: ${urls.join(', ') || 'none'})`);
  }
  for (const url of urls) {
    const kind = path.extname(new URL(url).pathname).slice(1);
    const res = await fetch(url);
    assert.equal(res.status, 200, `GET ${url}`);
    assert.match(res.headers.get('content-type') ?? '', expectedType[kind], `content type of ${url}`);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.length > 0, `${url} is not empty`);
    if (kind === 'wasm') {
      assert.deepEqual([...body.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d], `${url} is a wasm module`);
    }
  }
});

test('assets are sent compressed to clients that accept brotli', async () => {
  const html = await (await fetch(`${server.url}/`)).text();
  const wasm = assetUrls(html, server.url).find((u) => u.endsWith('.wasm'));
  assert.ok(wasm, 'the page references a wasm module');
  // node's fetch decompresses transparently but keeps the header.
  const res = await fetch(wasm, { headers: { 'accept-encoding': 'br' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-encoding'), 'br');
});

test('assets are revalidated, so a page and its wasm always come from the same build', async () => {
  const html = await (await fetch(`${server.url}/`)).text();
  for (const url of assetUrls(html, server.url)) {
    const res = await fetch(url);
    assert.equal(res.headers.get('cache-control'), 'no-cache', `cache-control of ${url}`);
    const etag = res.headers.get('etag');
    assert.ok(etag, `${url} has an ETag`);
    const again = await fetch(url, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304, `a revalidation of ${url} costs no body`);
  }
});

test('the database and its key are created in the working directory and nothing else is needed there', async () => {
  assert.ok(existsSync(server.dbPath), `${server.dbPath} exists`);
  const entries = (await readdir(server.dir)).sort();
  // The database with its WAL and lock file, and the cookie-signing key beside it.
  const allowed = /^(aiwall|wall\.key|wall\.db(-wal|-shm|-journal|\.lock)?)$/;
  assert.deepEqual(
    entries.filter((name) => !allowed.test(name)),
    [],
    `only the binary and its database in ${server.dir}: ${entries.join(', ')}`,
  );
});
