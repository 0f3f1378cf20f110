// OCPI 2.2.1 transport (transport_and_format.asciidoc, status_codes.asciidoc): the response envelope,
// the "Authorization: Token <base64>" header, X-Request-ID / X-Correlation-ID, routing headers, pagination
// (offset, limit, date_from, date_to; Link rel="next", X-Total-Count, X-Limit), and the outgoing HTTP client
// that checks what the other side answers. Every exchange goes into the Journal, with the spec violations seen.
"use strict";
const http = require("http");
const https = require("https");
const crypto = require("crypto");
const { O, validate, errorsOnly, isDateTime, parseDateTime } = require("./spec");

const STATUS = { SUCCESS: 1000, CLIENT_ERROR: 2000, INVALID: 2001, NOT_ENOUGH_INFO: 2002, UNKNOWN_LOCATION: 2003, UNKNOWN_TOKEN: 2004, SERVER_ERROR: 3000, CLIENT_API: 3001, UNSUPPORTED_VERSION: 3002, NO_MATCHING_ENDPOINTS: 3003 };
const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");
const uuid = () => crypto.randomUUID();
const ROUTING = ["ocpi-from-country-code", "ocpi-from-party-id", "ocpi-to-country-code", "ocpi-to-party-id"];

/** An OCPI error to answer with: HTTP status, OCPI status code, message (and optional data). */
class OcpiError extends Error {
  constructor(http, code, message, data) {
    super(message);
    Object.assign(this, { http, code, data });
  }
}

/** Every request received and sent, with status and the spec violations found; kept for GET /control/log. */
class Journal {
  /** ``print``: a function given one summary line per exchange (--verbose), or null. */
  constructor(print = null) {
    this.entries = [];
    this.print = print;
  }
  add(entry) {
    const record = { seq: this.entries.length + 1, at: new Date().toISOString(), ...entry, violations: entry.violations || [] };
    this.entries.push(record);
    if (this.print) this.print(summary(record));
    return record;
  }
  since(seq = 0) {
    return this.entries.filter((e) => e.seq > seq);
  }
  violations() {
    return this.entries.flatMap((e) => e.violations.map((v) => ({ seq: e.seq, direction: e.direction, method: e.method, url: e.url, violation: v })));
  }
}

function summary(e) {
  const outcome = e.skipped ? `skipped (${e.skipped})` : e.refused ? e.refused : e.error ? `error: ${e.error}` : `${e.http} ${e.status_code ?? ""}`;
  const what = e.purpose ? ` [${e.purpose}]` : "";
  const problems = e.violations.length ? `  ! ${e.violations.join(" | ")}` : "";
  return `${e.at.slice(11, 23)} ${e.direction.padEnd(4)} ${e.method} ${e.url}${what} -> ${outcome}${problems}`;
}

// ------------------------------------------------------------------ answering

function envelope(code, message, data) {
  const body = { status_code: code, timestamp: now() };
  if (message) body.status_message = message;
  if (data !== undefined) body.data = data;
  return body;
}

/** Write an OCPI response: ``headers`` adds e.g. pagination or routing headers. */
function reply(res, httpStatus, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(httpStatus, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
  return { http: httpStatus, status_code: body.status_code };
}

/** The credentials token of an "Authorization: Token <base64>" header, or an error naming what is wrong. */
function credentialsToken(header) {
  if (!header) return { error: "no Authorization header" };
  const m = /^Token ([A-Za-z0-9+/]+={0,2})$/.exec(header);
  if (!m) return { error: "Authorization is not 'Token <base64 of the credentials token>' (OCPI 2.2.1)" };
  if (m[1].length % 4 !== 0) return { error: "Authorization token is not valid Base64 (RFC 4648)" };
  const token = Buffer.from(m[1], "base64").toString("utf8");
  if (Buffer.from(token, "utf8").toString("base64") !== m[1]) return { error: "Authorization token is not the Base64 of a UTF-8 string" };
  return { token };
}

const encodeToken = (token) => `Token ${Buffer.from(token, "utf8").toString("base64")}`;

/** offset/limit/date_from/date_to of a paginated GET; throws OcpiError 2001 on malformed values. */
function pageQuery(searchParams, maxLimit) {
  const int = (name, min) => {
    const raw = searchParams.get(name);
    if (raw === null) return null;
    if (!/^\d+$/.test(raw) || Number(raw) < min) throw new OcpiError(400, STATUS.INVALID, `${name}=${raw} is not an integer >= ${min}`);
    return Number(raw);
  };
  const date = (name) => {
    const raw = searchParams.get(name);
    if (raw === null) return null;
    if (!isDateTime(raw)) throw new OcpiError(400, STATUS.INVALID, `${name}=${raw} is not an OCPI DateTime`);
    return raw;
  };
  const offset = int("offset", 0) ?? 0;
  const asked = int("limit", 1);
  return { offset, limit: Math.min(asked ?? maxLimit, maxLimit), date_from: date("date_from"), date_to: date("date_to") };
}

/** One page of ``objects`` (oldest first) and its headers: X-Total-Count, X-Limit, Link to the next page. */
function page(objects, query, selfUrl, maxLimit) {
  const from = query.date_from && parseDateTime(query.date_from);
  const to = query.date_to && parseDateTime(query.date_to);
  const matching = objects.filter((o) => {
    const t = parseDateTime(o.last_updated);
    return (!from || t >= from) && (!to || t < to);
  });
  const items = matching.slice(query.offset, query.offset + query.limit);
  const headers = { "X-Total-Count": String(matching.length), "X-Limit": String(maxLimit) };
  if (query.offset + items.length < matching.length) {
    const next = new URL(selfUrl);
    next.search = "";
    next.searchParams.set("offset", String(query.offset + items.length));
    next.searchParams.set("limit", String(query.limit));
    if (query.date_from) next.searchParams.set("date_from", query.date_from);
    if (query.date_to) next.searchParams.set("date_to", query.date_to);
    headers.Link = `<${next.toString()}>; rel="next"`;
  }
  return { items, headers };
}

// ------------------------------------------------------------------ requests received

/** Read a request body; resolves to {text} or rejects after 1 MiB. */
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > 1 << 20) {
        reject(new OcpiError(413, STATUS.CLIENT_ERROR, "request body larger than 1 MiB"));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** The JSON of a request body: HTTP 400 for anything that is not JSON (status_codes: "MUST be returned"). */
function parseJson(text) {
  if (!text) throw new OcpiError(400, STATUS.INVALID, "request body is empty; a JSON object is required");
  try {
    return JSON.parse(text);
  } catch (exc) {
    throw new OcpiError(400, STATUS.INVALID, `request body is not valid JSON: ${exc.message}`);
  }
}

/** Spec violations in a received request's headers (they are recorded, the request is still served). */
function requestHeaderViolations(req, { functional, hasBody, us, them }) {
  const v = [];
  if (!req.headers["x-request-id"]) v.push("request without X-Request-ID (transport_and_format: every request SHALL contain one)");
  if (!req.headers["x-correlation-id"]) v.push("request without X-Correlation-ID (transport_and_format: every request SHALL contain one)");
  if (hasBody && !/^application\/json\b/i.test(req.headers["content-type"] || "")) v.push("request with a body but Content-Type is not application/json");
  const present = ROUTING.filter((h) => req.headers[h] !== undefined);
  if (!functional && present.length) v.push(`routing headers on a configuration module (SHALL NOT be used): ${present.join(", ")}`);
  if (functional && them) {
    const expect = { "ocpi-from-country-code": them.country_code, "ocpi-from-party-id": them.party_id, "ocpi-to-country-code": us.country_code, "ocpi-to-party-id": us.party_id };
    for (const [h, want] of Object.entries(expect)) {
      const got = req.headers[h];
      if (got === undefined) v.push(`request without ${h} (routing headers: direct request, FROM = requesting party, TO = receiving party)`);
      else if (got.toUpperCase() !== want.toUpperCase()) v.push(`${h} is ${got}, expected ${want}`);
    }
  }
  return v;
}

// ------------------------------------------------------------------ requests sent

/**
 * Send one OCPI request and check the answer. Returns {ok, http, status_code, data, headers, error}.
 * ``opts``: token (the other party's credentials token, sent Base64 unless plainToken), functional (adds routing headers),
 * us/them (the parties for those headers), flow (logged: the request that started this flow), expect (schema of data).
 */
function send(journal, method, url, body, opts) {
  const requestId = uuid();
  const correlationId = uuid();
  const headers = { Authorization: opts.plainToken ? `Token ${opts.token}` : encodeToken(opts.token), "X-Request-ID": requestId, "X-Correlation-ID": correlationId, Accept: "application/json" };
  if (opts.functional) {
    Object.assign(headers, { "OCPI-from-country-code": opts.us.country_code, "OCPI-from-party-id": opts.us.party_id, "OCPI-to-country-code": opts.them.country_code, "OCPI-to-party-id": opts.them.party_id });
  }
  const text = body === undefined ? null : JSON.stringify(body);
  if (text !== null) Object.assign(headers, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  const entry = { direction: "out", method, url, request_id: requestId, correlation_id: correlationId, flow: opts.flow, body, purpose: opts.purpose };
  return new Promise((resolve) => {
    let target;
    try {
      target = new URL(url);
    } catch {
      resolve(finish({ error: `not a URL: ${url}` }));
      return;
    }
    const lib = target.protocol === "https:" ? https : http;
    const req = lib.request(target, { method, headers, timeout: opts.timeoutMs || 5000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve(finish(answer(res, Buffer.concat(chunks).toString("utf8")))));
      res.on("error", (exc) => resolve(finish({ error: exc.message })));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${opts.timeoutMs || 5000} ms`)));
    req.on("error", (exc) => resolve(finish({ error: exc.message })));
    if (text !== null) req.write(text);
    req.end();
  });

  function answer(res, raw) {
    const violations = [];
    let json;
    try {
      json = JSON.parse(raw);
    } catch {
      return { http: res.statusCode, headers: res.headers, error: `answer is not JSON (HTTP ${res.statusCode}): ${raw.slice(0, 200)}`, violations: ["answer without the OCPI response envelope (not JSON)"] };
    }
    violations.push(...errorsOnly(validate(O.Envelope, json)).map((p) => `response envelope: ${p}`));
    if (res.headers["x-request-id"] !== requestId) violations.push(`response X-Request-ID is ${res.headers["x-request-id"]}, not the request's ${requestId}`);
    if (res.headers["x-correlation-id"] !== correlationId) violations.push(`response X-Correlation-ID is ${res.headers["x-correlation-id"]}, not the request's ${correlationId}`);
    if (!/^application\/json\b/i.test(res.headers["content-type"] || "")) violations.push("response Content-Type is not application/json");
    const code = json && json.status_code;
    const ok = res.statusCode >= 200 && res.statusCode < 300 && code === STATUS.SUCCESS;
    if (ok && opts.expect) violations.push(...errorsOnly(validate(opts.expect, json.data, "data")));
    if (!ok) violations.push(`refused by the other party (HTTP ${res.statusCode}, status ${code}): ${json && json.status_message}`);
    return { ok, http: res.statusCode, status_code: code, status_message: json && json.status_message, data: json && json.data, headers: res.headers, violations };
  }

  function finish(result) {
    journal.add({ ...entry, http: result.http, status_code: result.status_code, response: result.data, error: result.error, violations: result.violations || [] });
    return result;
  }
}

module.exports = { STATUS, OcpiError, Journal, envelope, reply, credentialsToken, encodeToken, pageQuery, page, readBody, parseJson, requestHeaderViolations, send, now, uuid };
