// Click to first decoded frame, with and without a warm pool (ADR 0034): see README.md.
//
// The "click" is the launch request the UI's Launch button sends (POST /api/v1/sessions); the
// clock stops when headless Chromium has decoded the session's first video frame through the
// session proxy (page-probe.js's VideoDecoder counter). Median of RUNS launches per mode.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { launchOptions } from '../../tests/e2e/chromium.mjs';
import { Platform, eventually, requireDocker, startViewerServer } from '../../tests/e2e/streaming/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUNS = Number(process.env.RUNS || 20);
const TEMPLATE = process.env.TEMPLATE || 'chromium';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.OUT || path.join(HERE, '..', 'results', 'pools-latest.md');
const VIEWPORT = { width: 1280, height: 720 };

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

/** One launch: POST, running, ticket, page, first decoded frame; then the session is stopped. */
async function launch(platform, browser) {
  const clickedAt = performance.now();
  const { session } = await platform.createSession(TEMPLATE);
  const warm = session.state === 'running';
  await platform.waitForState(session.id, 'running', 120000);
  const runningAt = performance.now();
  const url = await platform.connectUrl(session.id);
  const page = await browser.newPage();
  try {
    await page.goto(url, { waitUntil: 'load' });
    await eventually('the first decoded frame', 60000, async () => {
      const frames = await page.evaluate(() => window.__ssFrames.read());
      return frames.firstDecodedAt || frames.firstPresentedAt ? frames : undefined;
    }, 20);
    const framedAt = performance.now();
    return { warm, running: (runningAt - clickedAt) / 1000, frame: (framedAt - clickedAt) / 1000 };
  } finally {
    await page.close();
    await platform.stopSession(session.id);
  }
}

async function poolReady(platform, templateId) {
  const pools = await platform.admin.ok('GET', '/api/v1/pools');
  const pool = pools.find((p) => p.template_id === templateId);
  return pool ? pool.agents.reduce((sum, a) => sum + a.ready, 0) : 0;
}

async function measure(platform, browser, templateId, size) {
  await platform.admin.ok('PUT', `/api/v1/templates/${templateId}/pool`, { size });
  const results = [];
  for (let i = 0; i < RUNS; i++) {
    if (size > 0) {
      const waited = performance.now();
      await eventually('a ready pool member', 120000, async () => (await poolReady(platform, templateId)) >= 1);
      results.push({ ...(await launch(platform, browser)), refill: (performance.now() - waited) / 1000 });
    } else {
      results.push(await launch(platform, browser));
    }
    const r = results.at(-1);
    console.log(`# pool ${size} run ${i + 1}: running ${r.running.toFixed(2)} s, first frame ${r.frame.toFixed(2)} s${r.warm ? ' (warm)' : ''}`);
  }
  await platform.admin.ok('PUT', `/api/v1/templates/${templateId}/pool`, { size: 0 });
  return results;
}

function row(label, results) {
  const frames = results.map((r) => r.frame);
  const running = results.map((r) => r.running);
  const warm = results.filter((r) => r.warm).length;
  const f = (x) => x.toFixed(2);
  return `| ${label} | ${results.length} | ${warm} | ${f(median(running))} | ${f(median(frames))} | ${f(quantile(frames, 0.9))} | ${f(Math.min(...frames))} | ${f(Math.max(...frames))} |`;
}

async function main() {
  requireDocker([`streamspace/${TEMPLATE}:latest`]);
  const viewer = await startViewerServer(1, VIEWPORT);
  const platform = await Platform.start({ publicUrl: viewer.origins[0] });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'streamspace-bench-pools-'));
  let browser;
  try {
    browser = await chromium.launchPersistentContext(userDataDir, { ...(await launchOptions(chromium, CHROMIUM)), viewport: VIEWPORT });
    await browser.addInitScript({ path: path.join(HERE, '..', '..', 'tests', 'e2e', 'streaming', 'page-probe.js') });
    const templates = await platform.admin.ok('GET', '/api/v1/templates');
    const templateId = templates.items.find((t) => t.name === TEMPLATE).id;
    // A pool serves only templates whose sessions mount no user's home; both modes launch the same.
    await platform.admin.ok('PATCH', `/api/v1/templates/${templateId}`, { home: { scope: 'none' } });
    const cold = await measure(platform, browser, templateId, 0);
    const warm = await measure(platform, browser, templateId, 1);
    const table = [
      `# Click to first decoded frame: ${TEMPLATE}, ${new Date().toISOString().slice(0, 10)}`,
      '',
      `${os.cpus().length} cores (${os.cpus()[0].model}), one Docker agent, headless Chromium, seconds from POST /api/v1/sessions.`,
      '',
      '| pool | launches | warm | running (median) | first decoded frame (median) | p90 | min | max |',
      '|---|---|---|---|---|---|---|---|',
      row('none', cold),
      row('1 per agent', warm),
      '',
      `Refill before each warm launch (median): ${median(warm.map((r) => r.refill)).toFixed(2)} s.`,
      '',
    ].join('\n');
    console.log(`\n${table}`);
    fs.writeFileSync(OUT, table);
  } finally {
    if (browser) await browser.close();
    await platform.stop();
    await viewer.close?.();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
