import { describe, expect, test } from "bun:test";
import { check_listen_allowed, parse_listen } from "../../src/admin/auth.ts";
import { create_admin_app } from "../../src/admin/app.ts";
import { system_clock } from "../../src/lib/clock.ts";
import { is_interlog_error } from "../../src/lib/errors.ts";
import { admin_app, enc, open_log } from "./support.ts";

const token = "s3cret-Token_1";

/** Every route but /healthz and the page, as (method, path, body). */
const guarded: [string, string][] = [
  ["GET", "/readyz"],
  ["GET", "/metrics"],
  ["GET", "/api/status"],
  ["GET", "/api/peers"],
  ["GET", "/api/quarantine"],
  ["GET", "/api/events"],
  ["GET", "/api/events/stream"],
  ["POST", "/api/events"],
];

describe("bearer token", () => {
  test("with a token set, every API route refuses a request without it and names what to send", async () => {
    const t = await admin_app({ token });
    for (const [method, path] of guarded) {
      const res = await t.app.request(path, { method, headers: { "content-type": "application/octet-stream" }, body: method === "POST" ? "x" : undefined });
      expect([method, path, res.status]).toEqual([method, path, 401]);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect(await res.json()).toEqual({ error: { code: "UNAUTHORIZED", message: "this API needs the admin token: send Authorization: Bearer <token>" } });
    }
    expect(t.log.count).toBe(0);
  });

  test("a wrong token is 401 and a malformed header 400", async () => {
    const t = await admin_app({ token });
    const wrong = await t.app.request("/api/status", { headers: { authorization: "Bearer not-it" } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { message: string } }).error.message).toBe("wrong admin token");
    const basic = await t.app.request("/api/status", { headers: { authorization: `Basic ${btoa("a:b")}` } });
    expect(basic.status).toBe(400);
  });

  test("with the right token every route answers", async () => {
    const t = await admin_app({ token });
    const post = await t.call("/api/events", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: enc("x") });
    expect(post.status).toBe(201);
    for (const [method, path] of guarded) {
      if (method === "POST" || path.endsWith("/stream")) continue;
      const res = await t.call(path);
      expect([path, res.status]).toEqual([path, 200]);
    }
    const stream = await t.call("/api/events/stream");
    expect(stream.status).toBe(200);
    await stream.body?.cancel();
  });

  test("/healthz and the dashboard page need no token, and the page holds no replica data", async () => {
    const t = await admin_app({ token });
    const health = await t.app.request("/healthz");
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true });
    const page = await t.app.request("/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).not.toContain(t.log.id);
    expect(html).not.toContain("truck-0042");
  });

  test("without a token every route answers without one", async () => {
    const t = await admin_app();
    for (const [method, path] of guarded) {
      if (method === "POST" || path.endsWith("/stream")) continue;
      expect([path, (await t.app.request(path)).status]).toEqual([path, 200]);
    }
  });

  test("a token that no Authorization header could carry is refused at start", async () => {
    const log = await open_log();
    let err: unknown;
    try {
      create_admin_app({ log, token: "has space", body_limit_bytes: 1024, clock: system_clock });
    } catch (e) {
      err = e;
    }
    expect(is_interlog_error(err, "CONFIG_INVALID")).toBe(true);
    expect((err as Error).message).toContain("openssl rand -base64 32");
  });
});

describe("listening beyond loopback", () => {
  const refused = (listen: string, tok?: string): string | null => {
    try {
      check_listen_allowed(listen, tok);
      return null;
    } catch (err) {
      expect(is_interlog_error(err, "CONFIG_INVALID")).toBe(true);
      return (err as Error).message;
    }
  };

  test("loopback addresses need no token", () => {
    for (const listen of ["127.0.0.1:8080", "127.0.0.2:1", "localhost:8080", "[::1]:8080"]) expect([listen, refused(listen)]).toEqual([listen, null]);
  });

  test("any other address needs a token", () => {
    for (const listen of ["0.0.0.0:8080", "[::]:8080", "192.168.1.20:8080", "truck.local:80"]) {
      expect(refused(listen)).toContain("no admin token is set");
      expect(refused(listen, "")).toContain("no admin token is set");
      expect(refused(listen, token)).toBeNull();
    }
  });

  test("malformed listen addresses are config errors that show the expected form", () => {
    for (const listen of ["8080", "127.0.0.1", ":8080", "127.0.0.1:99999", "::1:8080"]) {
      expect(refused(listen)).toMatch(/127\.0\.0\.1:/);
    }
    expect(parse_listen("[::1]:0")).toEqual({ hostname: "::1", port: 0 });
    expect(parse_listen("0.0.0.0:8080")).toEqual({ hostname: "0.0.0.0", port: 8080 });
  });
});
