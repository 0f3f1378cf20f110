// A stand-in CPO platform (a CSMS's OCPI interface) speaking OCPI 2.2.1, written from the specification text
// (github.com/ocpi/ocpi, tag 2.2.1, errata v2.2.1-d2) and sharing no code with the Core Client: the other side
// for the Core Client's OCPI bridge in tests and in the demo. Node 20, built-in modules only.
//
// Usage: node tests/interop/ocpi_cpo.js --port P --token-a TOKEN [--state FILE] [--fixture FILE]
//          [--country-code DE] [--party-id EVP] [--max-limit 3] [--public-url URL] [--meter-seed S] [--scenario JSON]
//          [--bench-evses N] [--verbose 1]
//   --port 0 picks a free port. When ready it prints one JSON line:
//   {"event":"ready","port":P,"versions_url":".../ocpi/versions","token_a":...,"party":{...},"meter":{serial,der_hex,base64,uncompressed_hex}}
//   --state FILE keeps registration, sessions, CDRs, tokens and counters across restarts (ACTIVE sessions go on).
//   --fixture FILE: {"locations":[...],"tariffs":[...]} (OCPI objects; see ocpi_cpo/fixtures.js for the defaults:
//   3 locations, 11 EVSEs, tariffs ENERGY/FLAT/TIME and some a chain cannot express). --bench-evses N adds a
//   location LOC-BENCH with EVSE-B1..EVSE-BN (T-ENERGY) for many concurrent sessions. --verbose 1 prints one
//   line per exchange on stderr (for the demo).
//
// OCPI (base {url}/ocpi): GET /versions, GET /2.2.1 (version details), and the 2.2.1 modules:
//   credentials (POST with token A registers: GETs the eMSP's versions + details with token B, returns token C;
//     PUT re-registers (new token C), DELETE unregisters (token A admits a new POST); GET; second POST -> 405)
//   locations, tariffs, cdrs, sessions: SENDER, paginated GET (offset, limit <= --max-limit, date_from, date_to;
//     Link rel="next", X-Total-Count, X-Limit); locations/{id}[/{evse_uid}[/{connector_id}]]
//   commands: RECEIVER, POST START_SESSION | STOP_SESSION (others: NOT_SUPPORTED)
//   tokens: RECEIVER, GET/PUT/PATCH {country_code}/{party_id}/{uid}[?type=]
// It pushes to the eMSP's RECEIVER endpoints learnt in the handshake: EVSE status PATCH, Session PUT + PATCHes
// (kwh, ChargingPeriods, total_cost), CDR POST (with OCMF signed_data if the scenario asks), Location/Tariff PUT;
// every request with Authorization: Token base64(token B), X-Request-ID, X-Correlation-ID, OCPI-from/to headers.
//
// Control API (plain JSON, no auth; POST bodies are JSON objects):
//   POST /control/scenario   {"start": "accept"|"refuse"|"reject"|"fail"|"timeout"|"occupied"|"no_result",
//                             "stop": "accept"|"refuse"|"reject"|"fail"|"timeout"|"no_result",
//                             "cdr": "push"|"pull_only"|"duplicate"|"none", "signed": "valid"|"tampered"|"foreign"|"none",
//                             "kwh_per_second": 0.5, "tick_ms": 1000, "period_ms": 60000, "result_delay_ms": 100,
//                             "command_timeout": 30,
//                             "authorize": "never"|"before_start", "push_down": false, "push_on_register": false,
//                             "cost_offset": 0, "cdr_delay_ms": 0, "meter_start_wh": 1000000, "pending_ms": 0,
//                             "plain_token": false (true: Authorization unencoded, as pre-2.2 peers),
//                             "reset": true (back to the defaults first)}
//                            refuse = CommandResponse REJECTED; reject/fail/timeout/occupied = CommandResult
//                            REJECTED/FAILED/TIMEOUT/EVSE_OCCUPIED after an ACCEPTED response; no_result = no POST.
//   GET  /control/state      registration, scenario, sessions, CDRs, tokens, meter public key
//   GET  /control/log?since=N every request received ("in") and sent ("out"), with HTTP and OCPI status codes,
//                            bodies, and the spec violations found ("self" entries: the stand-in's own errors)
//   GET  /control/violations  just the violations, each with its log seq
//   POST /control/status     {"location_id","evse_uid","status"}: set an EVSE status and PATCH it to the eMSP
//   POST /control/push       {} PUT every Location and Tariff; {"location_id"} PUT one Location;
//                            {"tariff": {...}} add/replace one Tariff and PUT it
//   POST /control/down       {"mode": "reset"|"503"}: refuse every OCPI request (connection reset, or HTTP 503 /
//                            status 3000) and send nothing; POST /control/up ends it (nothing sent while down is
//                            replayed: OCPI messages are not queued, the eMSP pulls)
//   POST /control/stop       {"session_id"}: the EV leaves: the session completes and its CDR follows
//   POST /control/tap        {"uid","type"?,"location_id","evse_uid"}: an RFID tap: whitelist or real-time
//                            authorization (POST tokens/{uid}/authorize), then a session (AUTH_REQUEST / WHITELIST)
//   POST /control/pull-tokens  GET the eMSP's Tokens, all pages
//   POST /control/cdr        {"token": CdrToken, "location_id","evse_uid","kwh"?,"minutes"?,"push"?}: a completed
//                            session the eMSP never heard of, and its CDR (pull only; POSTed too with "push": true)
//   POST /control/repost-cdr {"cdr_id"}: POST a stored CDR again
//   POST /control/revoke     the eMSP's token C stops working (401), as when the CPO revokes it
//   POST /control/update-credentials  the CPO PUTs new credentials to the eMSP (new token C; token B from the answer)
//   POST /control/unregister the CPO DELETEs its credentials at the eMSP and forgets the registration
//   POST /control/token-a    {"token"}: a new CREDENTIALS_TOKEN_A
//
// What it checks: every body against the 2.2.1 property tables (types, lengths, enums, cardinality, DateTime
// format; ocpi_cpo/spec.js), the Authorization header (Token + Base64), X-Request-ID / X-Correlation-ID, routing
// headers (present and naming the parties on functional modules, absent on versions/credentials), Content-Type;
// and in the answers to its own requests: the envelope, echoed X-Request-ID / X-Correlation-ID, CDR POST's
// Location header, the data schema where one is expected, pagination headers when it pulls Tokens.
// Choices where 2.2.1 leaves room (a strict reading): a body that is not JSON -> HTTP 400 / 2001; valid JSON with
// wrong or missing fields -> HTTP 200 / 2001 ("a HTTP error MUST NOT be returned"); malformed query parameters ->
// HTTP 400 / 2001; unknown objects -> 404 (2003 locations, 2004 tokens); wrong token -> 401 / 2000; an unencoded
// token is a wrong token; token A is void once registered (DELETE admits a new POST with it); unknown fields and
// missing headers are served but logged as violations; STOP_SESSION of an unknown session -> 1000 + UNKNOWN_SESSION;
// START_SESSION with another party's Token -> REJECTED. Deviation, opt-in only: "authorize": "before_start" asks
// for real-time authorization of APP_USER tokens, which mod_commands says a CPO SHALL NOT do.
// Limits: one registered eMSP at a time; tariff costs evaluate restrictions at the session's start (tariff.js).
"use strict";
const http = require("http");
const { Platform } = require("./ocpi_cpo/platform");
const { Charging } = require("./ocpi_cpo/charging");
const { Meter } = require("./ocpi_cpo/meter");
const fixtures = require("./ocpi_cpo/fixtures");
const control = require("./ocpi_cpo/control");
const { ROUTES, versions, details } = require("./ocpi_cpo/routes");
const { STATUS, OcpiError, Journal, envelope, reply, credentialsToken, readBody, parseJson, requestHeaderViolations, uuid, now } = require("./ocpi_cpo/transport");

function options(argv) {
  const opts = { "country-code": "DE", "party-id": "EVP", "max-limit": "3", host: "127.0.0.1", "meter-seed": "default" };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}: options are --name value`);
    opts[argv[i].slice(2)] = argv[i + 1];
  }
  for (const required of ["port", "token-a"]) if (opts[required] === undefined) throw new Error(`--${required} is required`);
  if (!/^\d+$/.test(opts.port) || !/^[1-9]\d*$/.test(opts["max-limit"])) throw new Error("--port and --max-limit must be integers");
  return opts;
}

// ------------------------------------------------------------------ OCPI requests

async function serveOcpi(platform, charging, req, res, url) {
  let parts; // ["ocpi", "2.2.1", module, ...]
  try {
    parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  const module = parts[1] === "versions" && parts.length === 2 ? "versions" : parts[1] === "2.2.1" ? parts[2] || "details" : null;
  const functional = module && !["versions", "details", "credentials"].includes(module);
  const requestId = req.headers["x-request-id"] || uuid();
  const correlation = req.headers["x-correlation-id"] || uuid();
  const headers = { "X-Request-ID": requestId, "X-Correlation-ID": correlation };
  const emsp = platform.emsp;
  if (functional && emsp) Object.assign(headers, { "OCPI-from-country-code": platform.party.country_code, "OCPI-from-party-id": platform.party.party_id, "OCPI-to-country-code": emsp.country_code, "OCPI-to-party-id": emsp.party_id });
  const entry = { direction: "in", method: req.method, url: url.pathname + url.search, request_id: requestId, correlation_id: correlation };
  let text = "";
  let violations = [];
  try {
    if (!module) throw new OcpiError(404, STATUS.CLIENT_ERROR, `no OCPI resource at ${url.pathname}`);
    const route = module === "versions" || module === "details" ? { methods: ["GET"], handler: module === "versions" ? versions : details } : ROUTES[module];
    if (!route) throw new OcpiError(404, STATUS.CLIENT_ERROR, `no module ${module} in this platform's 2.2.1 endpoints`);
    if (!route.methods.includes(req.method)) throw new OcpiError(405, STATUS.CLIENT_ERROR, `${req.method} is not allowed on ${module}`);
    text = await readBody(req);
    const who = platform.authorize(credentialsToken(req.headers.authorization), module === "details" ? "versions" : module);
    violations = requestHeaderViolations(req, { functional, hasBody: text.length > 0, us: platform.party, them: emsp });
    let body;
    const ctx = { platform, charging, req, url, method: req.method, segments: parts.slice(3), who, correlation, body: () => (body ??= parseJson(text)) };
    const result = await route.handler(ctx);
    if (ctx.warnings) violations.push(...ctx.warnings);
    Object.assign(headers, result.headers || {});
    const answered = reply(res, result.http, envelope(result.code, result.message, result.data), headers);
    if (result.code !== STATUS.SUCCESS) violations.push(`refused (HTTP ${result.http}, status ${result.code}): ${result.message}`);
    platform.journal.add({ ...entry, body: jsonOrText(text), ...answered, response: result.data, violations });
  } catch (exc) {
    const known = exc instanceof OcpiError;
    const error = known ? exc : new OcpiError(500, STATUS.SERVER_ERROR, `stand-in error: ${exc.message}`);
    const answered = reply(res, error.http, envelope(error.code, error.message, error.data), headers);
    violations.push(known ? `refused (HTTP ${error.http}, status ${error.code}): ${error.message}` : `stand-in error: ${exc.stack}`);
    platform.journal.add({ ...entry, body: jsonOrText(text), ...answered, violations });
  }
}

function jsonOrText(text) {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text.slice(0, 2000);
  }
}

// ------------------------------------------------------------------ control requests

async function serveControl(platform, charging, req, res, url) {
  const name = url.pathname.slice("/control/".length);
  const send = (status, data) => {
    const text = JSON.stringify(data);
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  };
  try {
    const table = req.method === "GET" ? control.GET : req.method === "POST" ? control.POST : {};
    if (!table[name]) throw new control.ControlError(404, `no control ${req.method} ${name}`);
    let body = {};
    if (req.method === "POST") {
      const text = await readBody(req);
      body = text ? JSON.parse(text) : {};
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw new control.ControlError(400, "the body must be a JSON object");
    }
    send(200, await table[name](platform, charging, req.method === "GET" ? url.searchParams : body));
  } catch (exc) {
    send(exc.status || (exc instanceof SyntaxError ? 400 : 500), { error: exc.message });
  }
}

// ------------------------------------------------------------------ main

function main() {
  let opts;
  try {
    opts = options(process.argv.slice(2));
  } catch (exc) {
    process.stderr.write(`ocpi_cpo: ${exc.message}\n`);
    process.exit(2);
  }
  const party = { country_code: opts["country-code"], party_id: opts["party-id"] };
  let platform, charging;
  const server = http.createServer((req, res) => {
    let url;
    try {
      url = new URL(req.url, "http://localhost");
    } catch {
      return reply(res, 400, envelope(STATUS.CLIENT_ERROR, "malformed request target"));
    }
    const serve = url.pathname.startsWith("/control/") ? serveControl : url.pathname.startsWith("/ocpi/") ? serveOcpi : null;
    if (serve === serveOcpi && platform.outage) {
      platform.journal.add({ direction: "in", method: req.method, url: req.url, refused: `down (${platform.outage})` });
      if (platform.outage === "reset") req.socket.destroy();
      else reply(res, 503, envelope(STATUS.SERVER_ERROR, "platform down for maintenance"));
      return;
    }
    if (!serve) return reply(res, 404, envelope(STATUS.CLIENT_ERROR, `no resource at ${url.pathname}`));
    serve(platform, charging, req, res, url).catch((exc) => {
      platform.journal.add({ direction: "self", method: "ERROR", url: req.url, violations: [`stand-in error: ${exc.stack}`] });
      if (!res.headersSent) reply(res, 500, envelope(STATUS.SERVER_ERROR, "stand-in error"));
    });
  });
  server.on("clientError", (err, socket) => socket.destroy());
  server.listen(Number(opts.port), opts.host, () => {
    const port = server.address().port;
    const baseUrl = opts["public-url"] ? opts["public-url"].replace(/\/+$/, "") : `http://${opts.host}:${port}`;
    try {
      const fixture = fixtures.load(opts.fixture, party, now(), Number(opts["bench-evses"] || 0));
      platform = new Platform({ party, baseUrl, tokenA: opts["token-a"], maxLimit: Number(opts["max-limit"]), stateFile: opts.state, journal: new Journal(opts.verbose === "1" ? (line) => process.stderr.write(line + "\n") : null), fixture });
      if (opts.scenario) control.POST.scenario(platform, null, JSON.parse(opts.scenario));
    } catch (exc) {
      process.stderr.write(`ocpi_cpo: ${exc.message}\n`);
      process.exit(2);
    }
    const meter = new Meter(opts["meter-seed"], "EVNCPO0001", platform.state.counters);
    charging = new Charging(platform, meter);
    charging.resume();
    const ready = { event: "ready", port, versions_url: platform.versionsUrl, token_a: platform.state.token_a, party, meter: { serial: meter.serial, ...meter.publicKey } };
    process.stdout.write(JSON.stringify(ready) + "\n");
  });
  const stop = () => {
    if (platform) platform.save();
    process.exit(0);
  };
  process.on("uncaughtException", (exc) => {
    // never die on what a peer sends: record it as the stand-in's own error and go on
    if (platform) platform.journal.add({ direction: "self", method: "ERROR", url: "", violations: [`stand-in error: ${exc.stack}`] });
    else process.stderr.write(`ocpi_cpo: ${exc.stack}\n`);
  });
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
