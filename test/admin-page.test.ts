// The admin page in headless Chromium (Debian's chromium, driven by playwright-core): it lists
// the datanodes and counts the buckets, draws throughput graphs, and fetches nothing from
// anywhere but its own admin port. In-page code is passed as strings: the project compiles
// without the DOM's types.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Page } from 'playwright-core';
import { disposeServer, startServer } from './helpers/server.js';
import { signedRequest } from './helpers/raw.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = `${CHROMIUM} is missing: apt-get install chromium (make test-deps)`;

/** Polls from here: waitForFunction would eval inside the page, which the page's CSP forbids. */
async function waitFor(page: Page, expression: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await sleep(100);
  }
}

if (!existsSync(CHROMIUM)) {
  // CI must run this test: a missing browser there is a failure, never a skip.
  if (process.env.CI === 'true') t.fail(missing);
  else t.test('admin page in headless Chromium', { skip: missing }, () => undefined);
} else {
  const server = await startServer({ args: ['--datanodes', '3', '--replication', '2', '--stats-interval', '0.3'] });
  t.teardown(() => disposeServer(server));

  // Setup without assertions: tap ends a root test that is idle between top-level assertions.
  for (const bucket of ['page-one', 'page-two', 'page-three']) {
    const res = await signedRequest(server, { method: 'PUT', path: `/${bucket}` });
    if (res.status !== 200) throw new Error(`CreateBucket ${bucket}: ${res.status}`);
  }
  const body = Buffer.alloc(50_000, 7);
  for (let i = 0; i < 4; i++) {
    const res = await signedRequest(server, { method: 'PUT', path: `/page-one/k${i}`, body, headers: { 'content-length': String(body.length) } });
    if (res.status !== 200) throw new Error(`PutObject k${i}: ${res.status}`);
  }

  // A persistent context is how playwright takes a --user-data-dir: a new, empty one.
  const profile = mkdtempSync(join(tmpdir(), 's3g-chromium-'));
  t.teardown(() => rmSync(profile, { recursive: true, force: true }));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());

  t.test('the page shows the datanodes, the bucket count and throughput', async (t) => {
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });

    const res = await page.goto(server.adminUrl + '/');
    t.equal(res?.status(), 200);
    t.match(res?.headers()['content-security-policy'], "default-src 'none'", 'a CSP that forbids fetching from elsewhere');
    t.equal(await page.title(), 's3g admin');

    await waitFor(page, `document.querySelectorAll('#datanodes tbody tr[data-datanode]').length === 3`);
    const datanodes = (await page.evaluate(
      `[...document.querySelectorAll('#datanodes tbody tr[data-datanode]')].map((r) => ({ id: r.dataset.datanode, cells: [...r.querySelectorAll('td')].map((c) => c.textContent) }))`,
    )) as { id: string; cells: string[] }[];
    t.same(datanodes.map((d) => d.id), ['1', '2', '3']);
    for (const d of datanodes) {
      t.match(d.cells[1], /^127\.0\.0\.1:\d+$/, `datanode ${d.id} address`);
      t.equal(d.cells[2], 'live', `datanode ${d.id} is live`);
      t.match(d.cells[4], /B$/, `datanode ${d.id} capacity`);
    }
    t.equal(await page.textContent('#datanode-count'), '3 / 3');

    await waitFor(page, `document.querySelector('#bucket-count').textContent === '3'`);
    t.equal(await page.textContent('#bucket-count'), '3', 'the bucket count');
    await waitFor(page, `document.querySelector('#object-count').textContent === '4'`);
    t.same(
      await page.evaluate(`[...document.querySelectorAll('#buckets tbody tr[data-bucket]')].map((r) => r.dataset.bucket)`),
      ['page-one', 'page-three', 'page-two'],
      'buckets, largest first',
    );
    t.equal(await page.textContent('#ready'), 'ready');
    t.equal(await page.textContent('#replication-health'), 'healthy');
    t.equal(await page.locator('#gateways tbody tr[data-gateway]').count(), 1);
    t.equal(await page.locator('#background tbody tr[data-service]').count(), 2, 're-replication and purge');

    // Traffic shows in the graphs on a later poll.
    for (let i = 0; i < 20; i++) await signedRequest(server, { method: 'GET', path: '/page-one/k0' });
    await waitFor(
      page,
      `(document.querySelector('#graph-bytes polyline[data-series="out"]')?.getAttribute('points') ?? '').split(' ').some((p) => Number(p.split(',')[1]) < 130)`,
    );
    t.pass('the bytes-out graph rises');
    t.match(await page.textContent('#graph-requests-max'), /^peak \d/);

    t.same(errors, [], 'no script errors');
    t.same(requested.filter((u) => !u.startsWith(server.adminUrl + '/')), [], 'nothing fetched from anywhere else');
    t.ok(requested.some((u) => u.endsWith('/api/status')), 'it polls api/status');
    await page.close();
  });
}
