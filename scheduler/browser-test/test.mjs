// Browser test of the operator page in headless Chromium: a task appears
// live after a signed webhook, a user signs in and acknowledges it.
//
// Needs the floorwatch binary (FLOORWATCH_BIN, default
// ../../target/debug/floorwatch) and Chromium (CHROMIUM, default
// /usr/bin/chromium). Screenshots go to ./out/.

import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.FLOORWATCH_BIN ?? resolve(here, "../../target/debug/floorwatch");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const outDir = join(here, "out");

const user = "browser";
const password = "browser-test-password";
// argon2id hash of `password`, made with
// `cargo run --example hash_password`; a test-only credential.
const passwordHash =
  "$argon2id$v=19$m=19456,t=2,p=1$C2JI8hqRYLHYm/Kxfb/KJQ$Hogz2XxzMu8jXerBwO412k3V7REzW3Zz/hkrKDMRLN8";

let scheduler;
let browser;
let baseUrl;
let dataDir;
const secret = randomBytes(24);

/** Returns a free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Polls `url` until it returns 200, for at most `timeoutMs`. */
async function waitForHttp(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((wake) => setTimeout(wake, 100));
  }
  throw new Error(`${url} did not return 200 within ${timeoutMs} ms`);
}

/** Posts `event` to /webhooks signed as Standard Webhooks v1. */
async function deliver(webhookId, event) {
  const body = JSON.stringify(event);
  const timestamp = Math.floor(Date.now() / 1000).toString();
  const signature = createHmac("sha256", secret)
    .update(`${webhookId}.${timestamp}.${body}`)
    .digest("base64");
  return fetch(`${baseUrl}/webhooks`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "webhook-id": webhookId,
      "webhook-timestamp": timestamp,
      "webhook-signature": `v1,${signature}`,
    },
    body,
  });
}

function openedEvent() {
  const now = new Date();
  const at = (secondsAgo) => new Date(now.getTime() - secondsAgo * 1000).toISOString();
  return {
    type: "incident.opened",
    timestamp: at(0),
    data: {
      incident_id: "browser-inc-1",
      seq: 1,
      site: "plant-1",
      sensor: "oven-7",
      metric: "temperature",
      rule: "temperature-high",
      condition: "above",
      threshold: 30.0,
      clear_threshold: 29.0,
      value: 31.5,
      unit: "°C",
      severity: "critical",
      first_breach_at: at(20),
      opened_at: at(0),
      reason: "temperature above 30 °C for 3 readings",
      window: [28.5, 29.4, 30.2, 30.9, 31.5].map((value, index) => ({
        time: at(40 - index * 10),
        value,
      })),
    },
  };
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "floorwatch-browser-"));
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const config = [
    `listen = "127.0.0.1:${port}"`,
    `database = ${JSON.stringify(join(dataDir, "scheduler.db"))}`,
    `secrets = ["whsec_${secret.toString("base64")}"]`,
    "",
    "[[users]]",
    `name = "${user}"`,
    `password_hash = "${passwordHash}"`,
    "",
  ].join("\n");
  const configPath = join(dataDir, "scheduler.toml");
  writeFileSync(configPath, config);

  scheduler = spawn(binary, ["scheduler", "--config", configPath], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  await waitForHttp(`${baseUrl}/healthz`, 15000);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  mkdirSync(outDir, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (scheduler && scheduler.exitCode === null) {
    const exited = new Promise((done) => scheduler.once("exit", done));
    scheduler.kill("SIGTERM");
    await exited;
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("task appears live, then is acknowledged after sign-in", async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });

  const streamOpened = page.waitForResponse((response) => response.url().endsWith("/events"));
  await page.goto(`${baseUrl}/`);
  await page.getByText("No maintenance tasks yet").waitFor();
  await streamOpened;

  const response = await deliver("msg_browser_1", openedEvent());
  assert.equal(response.status, 200);
  // No navigation happens: the row arrives through /events and the
  // table reload.
  const row = page.locator("tbody tr", { hasText: "oven-7" });
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.innerText(), /31\.5 °C/);
  await page.screenshot({ path: join(outDir, "live-task.png"), fullPage: true });

  await page.getByRole("link", { name: "Sign in" }).click();
  await page.getByLabel("Name").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`Signed in as ${user}`).waitFor();

  await row.getByRole("link").click();
  await page.getByRole("button", { name: "Acknowledge" }).click();
  await page.waitForURL(/\/tasks\/1$/);
  const status = page.locator("dt:text-is('Status') + dd");
  assert.equal(await status.innerText(), "acknowledged");
  const history = page.locator("tr", { hasText: "status open → acknowledged" });
  assert.match(await history.innerText(), new RegExp(user));
  assert.equal(await page.locator("svg polyline.reading").count(), 1);
  await page.screenshot({ path: join(outDir, "task-acknowledged.png"), fullPage: true });
});
