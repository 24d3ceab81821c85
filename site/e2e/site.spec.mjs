// The site end to end, in a real headless Chromium against the real server (seeded by 30-site.sh with three
// ingested runs: a promotable E4B run, an E4B run whose quality lane fails, and an E2B porting-track run).
// The tests run in order: the public pages start with no claim, an operator promotes one, then retracts it.
import { test, expect } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';

const shots = process.env.VKAE_SCREENSHOTS || path.resolve('..', 'target', 'e2e-screenshots');
fs.mkdirSync(shots, { recursive: true });
const operator = process.env.VKAE_OPERATOR || 'e2e-operator';
const password = process.env.VKAE_OPERATOR_PASSWORD || 'e2e-password-123';
const GOOD = 'e2e-e4b-h200-good';
const BAD = 'e2e-e4b-h200-bad-quality';
const PORTING = 'e2e-e2b-h200-porting';

test.describe.configure({ mode: 'serial' });

/** Fails the test on any console error or uncaught exception (a failed hydration shows up here). */
function watchErrors(page) {
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  return errors;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** Waits until the island holding `selector` has hydrated (its effect ran in the browser). */
async function hydrated(page, selector) {
  await expect(page.locator(selector)).toHaveAttribute('data-hydrated', 'true');
}

const pages = [
  ['/', 'home', /VKAE/],
  ['/models', 'models', /model catalog/i],
  ['/sizing', 'sizing', /sizing/i],
  ['/evidence', 'evidence', /evidence/i],
  ['/engine', 'engine', /engine stack/i],
  ['/preview', 'preview', /private preview/i],
  ['/internal', 'internal-login', /internal/i],
];

test('every page loads with a title, a description and no errors, at desktop and phone widths', async ({ page }) => {
  const errors = watchErrors(page);
  for (const [url, name, title] of pages) {
    for (const [width, height, suffix] of [[1280, 900, 'desktop'], [390, 844, 'phone']]) {
      await page.setViewportSize({ width, height });
      const response = await page.goto(url);
      expect(response.status(), url).toBe(200);
      await expect(page).toHaveTitle(title);
      const description = await page.locator('meta[name="description"]').getAttribute('content');
      expect(description && description.length, `${url} description`).toBeGreaterThan(20);
      await expect(page.locator('h1')).toHaveCount(1);
      // Nothing is fetched from other hosts.
      const foreign = await page.evaluate(() =>
        performance.getEntriesByType('resource').map((e) => e.name).filter((n) => !n.startsWith(location.origin)));
      expect(foreign, url).toEqual([]);
      if (url === '/sizing') await hydrated(page, 'form.filters');
      if (url === '/preview') await hydrated(page, '#preview-form');
      if (url === '/internal') await hydrated(page, '#login-form');
      // The phone layout never scrolls sideways.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${url} at ${width}px`).toBeLessThanOrEqual(0);
      await shot(page, `${name}-${suffix}`);
    }
  }
  // Static pages ship no WebAssembly; pages with islands do.
  await page.goto('/engine');
  expect(await page.locator('script[type="module"]').count()).toBe(0);
  expect(errors).toEqual([]);
});

test('with no promoted claim, the home page says so and shows no figures', async ({ page }) => {
  await page.goto('/');
  await expect(page.locator('#no-claim')).toBeVisible();
  await expect(page.locator('#performance-card .figures')).toHaveCount(0);
  await page.goto('/evidence');
  await expect(page.locator('#porting-tracks .blocked-row')).toHaveCount(4);
});

test('a filter redraws the speed chart in the browser', async ({ page }) => {
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto('/sizing');
  await hydrated(page, 'form.filters');
  const chart = page.locator('#speed-chart svg');
  await expect(chart).toBeVisible();
  const before = await page.locator('#speed-chart').innerHTML();
  const countBefore = await page.locator('#speed-chart-count').textContent();
  expect(before).toContain('E2B');
  await page.selectOption('#filter-family', 'E4B');
  await expect(page.locator('#speed-chart-count')).not.toHaveText(countBefore);
  const after = await page.locator('#speed-chart').innerHTML();
  expect(after).not.toEqual(before);
  expect(after).toContain('E4B');
  expect(after).not.toContain('E2B ·');
  // The table beside the chart follows the same filter.
  const families = await page.locator('#speed-table tbody tr td:first-child').allTextContents();
  expect(families.length).toBeGreaterThan(0);
  expect(new Set(families)).toEqual(new Set(['E4B']));
  await page.selectOption('#filter-gpu', { index: 1 });
  await expect(page.locator('#speed-chart-count')).toHaveText(/^1 bars shown|^\d+ bars shown/);
  await page.selectOption('#filter-kind', 'measured');
  await expect(page.locator('#speed-chart-empty')).toBeVisible();
  await shot(page, 'sizing-filtered');
  expect(errors).toEqual([]);
});

test('the site works from the keyboard: skip link, and a filter changed with arrow keys', async ({ page }) => {
  await page.goto('/sizing');
  await hydrated(page, 'form.filters');
  await page.keyboard.press('Tab');
  await expect(page.locator('a.skip')).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.locator('#main')).toBeFocused();
  const countBefore = await page.locator('#speed-chart-count').textContent();
  await page.focus('#filter-family');
  await page.keyboard.press('ArrowDown');
  await expect(page.locator('#filter-family')).toHaveValue('E2B');
  await expect(page.locator('#speed-chart-count')).not.toHaveText(countBefore);
  const families = await page.locator('#speed-table tbody tr td:first-child').allTextContents();
  expect(new Set(families)).toEqual(new Set(['E2B']));
});

test('the preview form validates per field, keeps input, and confirms', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/preview');
  await hydrated(page, '#preview-form');
  await page.click('#preview-form button[type=submit]');
  for (const field of ['name', 'email', 'company', 'service_path']) {
    await expect(page.locator(`#pf-${field}-error`)).not.toBeEmpty();
  }
  await expect(page.locator('#pf-name')).toBeFocused();
  await page.fill('#pf-name', 'Ada Lovelace');
  await page.fill('#pf-email', 'ada@localhost');
  await page.fill('#pf-company', 'Analytical Engines');
  await page.check('#pf-path-managed-endpoint');
  await page.selectOption('#pf-model_family', 'E4B');
  await page.fill('#pf-message', 'Chat serving at batch 8.');
  await page.click('#preview-form button[type=submit]');
  await expect(page.locator('#pf-email-error')).toContainText('work email');
  await expect(page.locator('#pf-email')).toHaveAttribute('aria-invalid', 'true');
  await expect(page.locator('#pf-name-error')).toBeEmpty();
  await expect(page.locator('#pf-name')).toHaveValue('Ada Lovelace');
  await expect(page.locator('#pf-message')).toHaveValue('Chat serving at batch 8.');
  await shot(page, 'preview-errors');

  // The server checks again on its own: a request that skips the browser's checks gets per-field errors.
  const raw = await page.evaluate(async () => {
    const body = new URLSearchParams({
      'input[name]': '', 'input[email]': 'nope', 'input[company]': 'X', 'input[service_path]': 'free-lunch',
      'input[model_family]': '', 'input[gpu]': '', 'input[message]': '', 'input[website]': '',
    });
    const r = await fetch('/_site/preview-request', { method: 'POST', body });
    return { status: r.status, body: await r.json() };
  });
  expect(raw.status).toBe(200);
  const fields = raw.body.Invalid.errors.map((e) => e.field);
  expect(fields).toEqual(['name', 'email', 'service_path']);

  await page.fill('#pf-email', 'ada@analytical-engines.example');
  await page.click('#preview-form button[type=submit]');
  await expect(page.locator('#preview-confirmation')).toBeVisible();
  await expect(page.locator('#preview-confirmation')).toContainText('PR-');
  await shot(page, 'preview-confirmation');
  expect(errors).toEqual([]);
});

test('a cross-site request to a server function is refused', async ({ request }) => {
  const r = await request.post('/_site/login', {
    headers: { Origin: 'https://evil.example', 'Content-Type': 'application/x-www-form-urlencoded' },
    data: `name=${operator}&password=${password}`,
  });
  expect(r.status()).toBe(403);
  const promote = await request.post('/_site/promote', {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    data: `run_id=${GOOD}&level=vkae-path&reason=x&csrf=guess`,
  });
  expect(promote.status()).toBe(401);
});

test('an operator logs in, promotes a run, and the public pages show the claim; a retraction removes it', async ({ page }) => {
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto('/internal');
  await hydrated(page, '#login-form');
  await page.fill('#login-name', operator);
  await page.fill('#login-password', 'not-the-password');
  await page.click('#login-form button[type=submit]');
  await expect(page.locator('#login-error')).toContainText('do not match');

  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
  await expect(page.locator('#operator-name')).toHaveText(operator);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name.startsWith('__Host-'));
  expect(session && session.httpOnly).toBe(true);

  // Lane verdicts with their reasons.
  await expect(page.locator(`#run-${BAD} .lane.fail`)).toContainText('quality');
  await expect(page.locator(`#run-${GOOD} .lane.fail`)).toHaveCount(0);
  // The preview request from the form test is in the inbox.
  await expect(page.locator('#inbox')).toContainText('ada@analytical-engines.example');
  const csv = await page.evaluate(async () => (await fetch('/internal/preview-requests.csv')).text());
  expect(csv).toContain('ada@analytical-engines.example');
  await shot(page, 'internal-runs');

  // A porting-track run is refused with the reason shown.
  await hydrated(page, `#run-${PORTING} form.run-actions`);
  await page.fill(`#reason-${PORTING}`, 'try the porting track');
  await page.click(`#promote-${PORTING}`);
  await expect(page.locator(`#run-${PORTING} .form-error`)).not.toBeEmpty();

  await hydrated(page, `#run-${GOOD} form.run-actions`);
  await page.selectOption(`#level-${GOOD}`, 'optimized-showcase');
  await page.fill(`#reason-${GOOD}`, 'H200 qualification passed every lane');
  await page.click(`#promote-${GOOD}`);
  await expect(page.locator(`#run-${GOOD} .badge.status-promoted`)).toBeVisible();
  await expect(page.locator('#audit-log')).toContainText('promote');
  await shot(page, 'internal-promoted');

  await page.goto('/');
  await expect(page.locator('#no-claim')).toHaveCount(0);
  const card = page.locator('#performance-card');
  await expect(card).toContainText('301.2'); // the VKAE median of the seeded run (300.9, 301.2, 302.5)
  await expect(card).toContainText('9.8'); // its baseline median (9.76)
  await expect(card).toContainText('Optimized showcase');
  await expect(card).toContainText('(derived)');
  await shot(page, 'home-with-claim');
  await page.goto('/evidence');
  await expect(page.locator(`#claim-${GOOD}`)).toBeVisible();
  // The claim links its signed record, served as stored (its signature and run id inside).
  const recordHref = await page.locator(`#claim-${GOOD} a.record-link`).getAttribute('href');
  expect(recordHref).toBe(`/api/v1/claims/${GOOD}/record`);
  const served = await page.evaluate(async (href) => (await fetch(href)).json(), recordHref);
  expect(served.run_id).toBe(GOOD);
  expect(typeof served.signature).toBe('string');
  await shot(page, 'evidence-with-claim');
  await page.goto('/sizing');
  await hydrated(page, 'form.filters');
  await page.selectOption('#filter-kind', 'measured');
  await expect(page.locator('#speed-chart')).toContainText('tok/s measured');

  await page.goto('/internal');
  await hydrated(page, `#run-${GOOD} form.run-actions`);
  await page.fill(`#reason-${GOOD}`, 'withdrawn for the test');
  await page.click(`#retract-${GOOD}`);
  await expect(page.locator(`#run-${GOOD} .badge.status-retracted`)).toBeVisible();
  await page.goto('/');
  await expect(page.locator('#no-claim')).toBeVisible();
  await page.goto('/evidence');
  await expect(page.locator(`#claim-${GOOD}`)).toHaveCount(0);

  await page.goto('/internal');
  await hydrated(page, `#run-${GOOD} form.run-actions`);
  await page.click('#logout');
  await expect(page.locator('#login-form')).toBeVisible();
  expect(errors).toEqual([]);
});
