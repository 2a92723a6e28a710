// Starts the release binaries the way a user would (a copied `aiwall`, the fake Ollama) and
// drives Debian's Chromium through playwright-core, for the tests in this directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const artifactsDir = path.join(here, 'artifacts');
const aiwallBinary = process.env.AIWALL_BIN ?? path.join(repoRoot, 'target/release/aiwall');
const fakeOllamaBinary = process.env.FAKE_OLLAMA_BIN ?? path.join(repoRoot, 'target/release/fake-ollama');
const keepDirs = process.env.AIWALL_E2E_KEEP === '1';

// Every child still running when the test process exits is killed, so a failed test leaves
// no server behind holding a port.
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A TCP port nobody listens on right now. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

async function waitForExit(child, ms) {
  if (exited(child)) return true;
  // An unref'd timer: a pending one would keep the test process alive after the child exited.
  return Promise.race([once(child, 'exit').then(() => true), sleep(ms, false, { ref: false })]);
}

/** Ends a child with `signal`, then SIGKILL if it is still there after `graceMs`. */
async function endChild(child, signal, graceMs) {
  if (exited(child)) return;
  child.kill(signal);
  if (!(await waitForExit(child, graceMs))) {
    child.kill('SIGKILL');
    await waitForExit(child, 5000);
  }
}

function logStream(name) {
  return createWriteStream(path.join(artifactsDir, `${name}.log`), { flags: 'a' });
}

/**
 * Copies target/release/aiwall ALONE into a fresh temporary directory and starts it there on a
 * free port with a SQLite database in that directory; resolves once GET /healthz answers.
 *
 * `env` adds or overrides AIWALL_* variables. Without AIWALL_OLLAMA__URL (or AIWALL_BACKENDS,
 * which the server refuses together with it) the server is pointed at a port where nothing
 * listens (Ollama "down"). The server's output goes to artifacts/aiwall-<port>.log.
 *
 * Returns { url, port, dir, dbPath, proc, output(), stop(), terminate(), kill9(), restart() }:
 * stop() ends it (SIGTERM) and deletes the directory (kept when AIWALL_E2E_KEEP=1);
 * terminate() ends it with SIGTERM and kill9() with SIGKILL, both keeping the directory and
 * the port, so that restart() can start the same binary on the same database and URL.
 */
export async function startServer({ env = {}, readyTimeoutMs = 30_000 } = {}) {
  await mkdir(artifactsDir, { recursive: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'aiwall-e2e-'));
  const binary = path.join(dir, 'aiwall');
  try {
    await copyFile(aiwallBinary, binary);
  } catch (error) {
    throw new Error(`cannot copy ${aiwallBinary} (run scripts/build first): ${error.message}`);
  }
  await chmod(binary, 0o755);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dbPath = path.join(dir, 'wall.db');
  const childEnv = { ...process.env };
  for (const key of Object.keys(childEnv)) if (key.startsWith('AIWALL_') || key.startsWith('LEPTOS_')) delete childEnv[key];
  Object.assign(childEnv, {
    RUST_LOG: process.env.RUST_LOG ?? 'info,sqlx=warn',
    AIWALL_SERVER__ADDR: `127.0.0.1:${port}`,
    ...(env.AIWALL_BACKENDS ? {} : { AIWALL_OLLAMA__URL: `http://127.0.0.1:${await freePort()}` }),
    AIWALL_DATABASE__URL: `sqlite://${dbPath}`,
    ...env,
  });

  let proc;
  let output = '';
  const log = logStream(`aiwall-${port}`);

  async function launch() {
    output = '';
    proc = track(spawn(binary, [], { cwd: dir, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] }));
    for (const stream of [proc.stdout, proc.stderr]) {
      stream.on('data', (chunk) => {
        output += chunk;
        log.write(chunk);
      });
    }
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (exited(proc)) {
        throw new Error(`aiwall exited (${proc.exitCode ?? proc.signalCode}) before it was healthy:\n${output}`);
      }
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        throw new Error(`aiwall not healthy after ${readyTimeoutMs} ms:\n${output}`);
      }
      await sleep(100);
    }
  }

  const graceMs = (Number(childEnv.AIWALL_SERVER__SHUTDOWN_GRACE_SECS ?? 10) + 5) * 1000;
  try {
    await launch();
  } catch (error) {
    if (proc) await endChild(proc, 'SIGKILL', 1000);
    throw error;
  }

  return {
    url,
    port,
    dir,
    dbPath,
    get proc() {
      return proc;
    },
    output: () => output,
    async terminate() {
      await endChild(proc, 'SIGTERM', graceMs);
    },
    async kill9() {
      await endChild(proc, 'SIGKILL', 5000);
    },
    async restart() {
      await endChild(proc, 'SIGTERM', graceMs);
      await launch();
    },
    async stop() {
      await endChild(proc, 'SIGTERM', graceMs);
      log.end();
      if (!keepDirs) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs target/release/fake-ollama (built by scripts/test) on `port` (0: a free one) with the
 * given extra flags (see `target/release/fake-ollama --help`, e.g. ['--tokens-per-second', '50']).
 * A stopped fake comes back on the same port with `startFakeOllama([], { port })`.
 * Resolves with { url, port, proc, output(), stop() } once it printed its URL.
 */
export async function startFakeOllama(args = [], { port = 0 } = {}) {
  await mkdir(artifactsDir, { recursive: true });
  const proc = track(
    spawn(fakeOllamaBinary, ['--port', String(port), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let output = '';
  let stdout = '';
  const log = logStream('fake-ollama');
  proc.stderr.on('data', (chunk) => {
    output += chunk;
    log.write(chunk);
  });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fake-ollama printed no URL in 15 s:\n${output}`)), 15_000);
    proc.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${fakeOllamaBinary} (cargo build --release -p fake-ollama): ${error.message}`));
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fake-ollama exited (${code}) before printing its URL:\n${output}`));
    });
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      log.write(chunk);
      const newline = stdout.indexOf('\n');
      if (newline >= 0) {
        clearTimeout(timer);
        resolve(stdout.slice(0, newline).trim());
      }
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    proc,
    output: () => output,
    async stop() {
      // It shuts down cleanly on Ctrl-C.
      await endChild(proc, 'SIGINT', 5000);
      log.end();
    },
  };
}

export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-quic',
  '--disable-sync',
];

/** Debian's headless Chromium (never a downloaded one), with a fresh profile. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs,
  });
}

/**
 * Every Content-Security-Policy violation reported by a page of this test file and not yet
 * checked: the page's `securitypolicyviolation` events and the console's CSP messages. A
 * violation fails the test it happens in (see `assertNoCspViolations`), so that a policy that
 * blocks the wasm, a script or a style can never go unnoticed.
 */
const cspViolations = [];
const openPages = new Set();

/** Records the CSP violations of `page`, from before its first script runs. */
async function watchCsp(page) {
  openPages.add(page);
  page.once('close', () => openPages.delete(page));
  await page.exposeBinding('__aiwallCspViolation', (_source, v) => {
    cspViolations.push(`${v.directive} blocked ${v.blocked || 'inline'} on ${v.page}${v.sample ? `: ${v.sample}` : ''}`);
  });
  await page.addInitScript(() => {
    window.addEventListener(
      'securitypolicyviolation',
      (e) => window.__aiwallCspViolation?.({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample, page: e.documentURI }),
      true,
    );
  });
  page.on('console', (msg) => {
    if (/Content[- ]Security[- ]Policy/i.test(msg.text())) cspViolations.push(`console: ${msg.text()}`);
  });
}

/**
 * Fails if any page reported a CSP violation since the last check, and forgets them. Runs after
 * every test of a test file (below); a round trip to every open page first lets the reports
 * still on their way arrive.
 */
export async function assertNoCspViolations() {
  await Promise.all([...openPages].map((page) => page.evaluate(() => 0).catch(() => {})));
  const seen = cspViolations.splice(0);
  assert.deepEqual(seen, [], `Content-Security-Policy violations:\n${seen.join('\n')}`);
}

// In test files only: tour.js, a script, would print an empty test report.
if (process.env.NODE_TEST_CONTEXT || process.argv[1]?.endsWith('.test.js')) afterEach(assertNoCspViolations);

/**
 * A new page that records console errors and uncaught exceptions in `page.problems`, and
 * Content-Security-Policy violations for `assertNoCspViolations`.
 */
export async function newPage(browser) {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
  await watchCsp(page);
  return page;
}

/** Resolves once the app has hydrated (it sets <body data-hydrated="true">). */
export async function waitForHydration(page, timeout = 30_000) {
  try {
    await page.waitForFunction(() => document.body?.dataset.hydrated === 'true', null, { timeout });
  } catch (error) {
    error.message += `\nnot hydrated; the page reported: ${JSON.stringify(page.problems ?? [])}`;
    throw error;
  }
}

/** Saves a full-page PNG to tests/e2e/artifacts/<name>.png and returns its path. */
export async function screenshot(page, name) {
  await mkdir(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name.replace(/[^\w.-]+/g, '_')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Where the screenshots of the UI's states are kept: committed, so a change shows in review. */
export const screenshotsDir = path.join(here, 'screenshots');

/**
 * Photographs one state of the UI at 1280 and 375 px, light and dark, as
 * tests/e2e/screenshots/<name>-<width>-<scheme>.png: `target` (a locator, e.g. one post) or
 * the visible page. Animations are frozen so that the pictures are stable. The page is left at
 * its earlier viewport, in the light scheme. Returns the four paths.
 */
export async function shots(page, name, target = null) {
  await mkdir(screenshotsDir, { recursive: true });
  const viewport = page.viewportSize();
  const files = [];
  for (const width of [1280, 375]) {
    for (const scheme of ['light', 'dark']) {
      await page.setViewportSize({ width, height: 900 });
      await page.emulateMedia({ colorScheme: scheme });
      const file = path.join(screenshotsDir, `${name.replace(/[^\w.-]+/g, '_')}-${width}-${scheme}.png`);
      const options = { path: file, animations: 'disabled', caret: 'hide' };
      if (target) await target.screenshot(options);
      else await page.screenshot(options);
      files.push(file);
    }
  }
  if (viewport) await page.setViewportSize(viewport);
  await page.emulateMedia({ colorScheme: 'light' });
  return files;
}

/** Limits loose enough for a test file that posts many posts (AI or text) from one browser or address. */
export const manyPosts = {
  AIWALL_LIMITS__AI_POSTS_PER_MINUTE: '1000',
  AIWALL_LIMITS__QUEUED_PER_AUTHOR: '100',
  AIWALL_LIMITS__QUEUED_PER_ADDRESS: '100',
  AIWALL_LIMITS__TEXT_POSTS_PER_MINUTE: '1000',
};

/**
 * What most browser test files run against: the fake Ollama, the server pointed at it (with
 * `env` added) and Chromium. Resolves with { ollama, server, browser }; `stopWall` ends them.
 */
export async function startWall(env = {}) {
  const ollama = await startFakeOllama();
  const server = await startServer({ env: { AIWALL_OLLAMA__URL: ollama.url, ...env } });
  const browser = await launchBrowser();
  return { ollama, server, browser };
}

/** Ends what `startWall` started (any of them may be missing if starting failed). */
export async function stopWall({ ollama, server, browser }) {
  await browser?.close();
  await server?.stop();
  await ollama?.stop();
}

/**
 * A new page of `context` on the wall at `url`, `width` × `height`, in `colorScheme`, once
 * hydrated. `beforeLoad(page)` runs before the page loads (listeners, a clock, a first post).
 */
export async function openPage(context, url, { width = 900, height = 1000, colorScheme = 'light', beforeLoad } = {}) {
  const page = await newPage(context);
  if (beforeLoad) await beforeLoad(page);
  await page.setViewportSize({ width, height });
  await page.emulateMedia({ colorScheme });
  await page.goto(url);
  await waitForHydration(page);
  return page;
}

/**
 * A real nginx (Debian's package, or $NGINX) in the foreground on a free port, with `site(port)`
 * in its `http` block and every file of it in a temporary directory. Resolves with
 * { url, accessLog(), stop() } once GET /healthz answers through it; the access log's lines
 * are `<upstream address> <request line>`.
 */
export async function startNginx(site) {
  await mkdir(artifactsDir, { recursive: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'aiwall-e2e-nginx-'));
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  const { writeFile, readFile } = await import('node:fs/promises');
  await writeFile(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
http {
    log_format upstream '$upstream_addr "$request"';
    access_log ${dir}/access.log upstream;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${site(port)}
}
`,
  );
  const binary = process.env.NGINX ?? '/usr/sbin/nginx';
  const log = logStream('nginx');
  const proc = track(spawn(binary, ['-p', dir, '-c', conf, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited(proc)) throw new Error(`nginx exited (${proc.exitCode ?? proc.signalCode}); see artifacts/nginx.log`);
    try {
      if ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error('nginx did not answer within 10 s; see artifacts/nginx.log');
    await sleep(50);
  }
  return {
    url,
    accessLog: async () => readFile(path.join(dir, 'access.log'), 'utf8').catch(() => ''),
    async stop() {
      await endChild(proc, 'SIGTERM', 3000);
      if (!keepDirs) await rm(dir, { recursive: true, force: true });
    },
  };
}
