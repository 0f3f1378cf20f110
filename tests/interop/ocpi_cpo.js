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
//   POST /control/connector  {"location_id","evse_uid","connector_id","tariff_ids":[...],"method"?: "PATCH"|"PUT"}:
//                            re-point a Connector to other Tariffs and PATCH (tariff_ids) or PUT (the Connector) it
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
// format; ocpi_shared/spec.js), the Authorization header (Token + Base64), X-Request-ID / X-Correlation-ID, routing
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
const { Platform } = require("./ocpi_cpo/platform");
const { Charging } = require("./ocpi_cpo/charging");
const { Meter } = require("./ocpi_cpo/meter");
const fixtures = require("./ocpi_cpo/fixtures");
const control = require("./ocpi_cpo/control");
const { ROUTES, versions, details } = require("./ocpi_cpo/routes");
const { Journal, now } = require("./ocpi_shared/transport");
const { run, verbosePrinter } = require("./ocpi_shared/serve");

const DEFAULTS = { "country-code": "DE", "party-id": "EVP", "max-limit": "3", host: "127.0.0.1", "meter-seed": "default" };

run("ocpi_cpo", DEFAULTS, ["port", "token-a"], (opts, baseUrl) => {
  const party = { country_code: opts["country-code"], party_id: opts["party-id"] };
  const fixture = fixtures.load(opts.fixture, party, now(), Number(opts["bench-evses"] || 0));
  const journal = new Journal(verbosePrinter(opts));
  const platform = new Platform({ party, baseUrl, tokenA: opts["token-a"], maxLimit: Number(opts["max-limit"]), stateFile: opts.state, journal, fixture });
  if (opts.scenario) control.POST.scenario(platform, null, JSON.parse(opts.scenario));
  const meter = new Meter(opts["meter-seed"], "EVNCPO0001", platform.state.counters);
  const charging = new Charging(platform, meter);
  charging.resume();
  const app = { platform, routes: ROUTES, versions, details, control, controlArgs: [platform, charging], context: { charging } };
  return { app, ready: { versions_url: platform.versionsUrl, token_a: platform.state.token_a, party, meter: { serial: meter.serial, ...meter.publicKey } } };
});
