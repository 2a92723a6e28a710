// A photo tour of the card's states, for before/after comparisons in review (not a test: it
// asserts nothing). Runs the release binary (or AIWALL_BIN) with the fake Ollama and saves
// writing, finished, failed, queued, stalled and phone pictures into the given directory:
//
//   node tests/e2e/tour.js /tmp/after            # AIWALL_BIN=/path/to/old/aiwall for "before"
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { launchBrowser, newPage, startFakeOllama, startServer, waitForHydration } from './harness.js';

const out = path.resolve(process.argv[2] ?? 'tour');
await mkdir(out, { recursive: true });

const markdown = [
  '## Lighthouses',
  '',
  'A **lighthouse** guides ships with a `Fresnel` lens. Keepers once lived in them:',
  '',
  '- they trimmed the wick',
  '- they logged every ship',
  '',
  '| Light | Range |',
  '| --- | --- |',
  '| Eddystone | 22 nmi |',
  '',
  '> The sea is a good teacher.',
  '',
  '```rust',
  'fn main() {',
  '    println!("beam");',
  '}',
  '```',
  '',
  'See https://example.org/lights for more.',
].join('\n');
// Escaped only where the fake's directive needs it, so that the prompt still reads.
const output = markdown.replace(/%/g, '%25').replace(/#/g, '%23').replace(/\n/g, '%0A');

const ollama = await startFakeOllama();
const server = await startServer({
  env: {
    AIWALL_OLLAMA__URL: ollama.url,
    AIWALL_JOBS__CONCURRENCY: '1',
    AIWALL_LIMITS__AI_POSTS_PER_MINUTE: '1000',
    AIWALL_LIMITS__QUEUED_PER_AUTHOR: '100',
    AIWALL_LIMITS__QUEUED_PER_ADDRESS: '100',
    AIWALL_LIMITS__TEXT_POSTS_PER_MINUTE: '1000',
  },
});
const browser = await launchBrowser();
try {
  const page = await newPage(browser);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(server.url);
  await waitForHydration(page);

  const ask = async (prompt) => {
    const response = await page.request.post(`${server.url}/api/v1/ai/posts`, {
      data: { author_name: 'Ada Lovelace', prompt },
      headers: { Origin: server.url },
    });
    if (response.status() !== 201) throw new Error(`${response.status()} ${await response.text()}`);
    return response.json();
  };
  const post = (id) => page.locator(`article.post[data-post-id="${id}"]`);
  const status = (id, wanted) =>
    page.waitForFunction(
      ([id, wanted]) => wanted.includes(document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.dataset.status),
      [id, wanted],
      { timeout: 60_000 },
    );
  const photo = async (name, target) => {
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      await target.screenshot({ path: path.join(out, `${name}-${scheme}.png`), animations: 'disabled' });
    }
    await page.emulateMedia({ colorScheme: 'light' });
  };

  const finished = await ask(`Tell me about lighthouses #fake:rate=60 #fake:output=${output}`);
  await status(finished.id, ['completed']);
  await page.waitForTimeout(800);
  await photo('finished', post(finished.id));

  const failed = await ask('Tell me a story #fake:rate=30 #fake:tokens=40 #fake:error-after=12');
  await status(failed.id, ['failed']);
  await photo('failed', post(failed.id));

  const stalled = await ask('Count slowly #fake:rate=10 #fake:tokens=200 #fake:stall-after=15');
  await status(stalled.id, ['generating']);
  await page.waitForTimeout(1_500 + 9_000);
  await photo('stalled', post(stalled.id));
  await page.request.post(`${server.url}/api/v1/ai/generation/${stalled.job.id}/cancel`, { headers: { Origin: server.url } });
  await status(stalled.id, ['cancelled']);

  const writing = await ask(`Tell me about lighthouses, slowly #fake:rate=6 #fake:output=${output}`);
  await status(writing.id, ['generating']);
  await page.waitForFunction(
    (id) => (document.querySelector(`article.post[data-post-id="${id}"] .ai-progress`)?.textContent ?? '').includes('logged'),
    writing.id,
    { timeout: 60_000 },
  );
  await photo('writing', post(writing.id));

  const queued = [await ask('Second question #fake:tokens=5'), await ask('Third question #fake:tokens=5')];
  await status(queued[1].id, ['queued']);
  await page.waitForTimeout(500);
  await photo('queued', page.locator('section.posts'));

  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(300);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({ path: path.join(out, `phone-${scheme}.png`), fullPage: true, animations: 'disabled' });
  }
  console.log(`tour: pictures in ${out}`);
} finally {
  await browser.close();
  await server.stop();
  await ollama.stop();
}
