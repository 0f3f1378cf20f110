// A stand-in eMSP platform speaking OCPI 2.2.1, written from the specification text (github.com/ocpi/ocpi, tag
// 2.2.1, errata v2.2.1-d2) and sharing no code with the Core Client: the other side for a CPO platform's OCPI
// interface (issue 20 part 3: the Core Client as CPO to roaming eMSPs). The mirror image of ocpi_cpo.js, with
// which it shares the role-free modules in ocpi_shared/. Node 20, built-in modules only.
//
// Usage: node tests/interop/ocpi_emsp.js --port P [--state FILE] [--country-code NL] [--party-id EMS]
//          [--max-limit 3] [--public-url URL] [--verbose 1]
//   --port 0 picks a free port; when ready it prints {"event":"ready","port":P,"versions_url":...,"party":{...}}.
//
// OCPI (base {url}/ocpi): GET /versions, GET /2.2.1, and the eMSP side of the 2.2.1 modules:
//   credentials (it is the Sender of the handshake, see /control/register; afterwards GET, PUT (the CPO's new
//     credentials: its endpoints are read again, a new token answers), DELETE; POST -> 405)
//   locations, tariffs, sessions: RECEIVER, {country_code}/{party_id}/{id}... PUT / PATCH (locations, sessions) /
//     DELETE (tariffs) / GET; the URL must name the registered CPO's role and agree with the object
//   cdrs: RECEIVER, POST (201 + Location header; a CDR id already received is refused: 2000), GET at that Location
//   commands: SENDER, POST {command}/{uid}: the CommandResult of a command it sent with that response_url
//   tokens: SENDER, GET the Tokens (paginated; date_from / date_to filter on last_updated), POST {uid}/authorize[?type=]
//     with LocationReferences (none: 2002; unknown token: 404 / 2004; malformed: 2001; a Location or EVSE the CPO
//     never published: a violation): AuthorizationInfo, ALLOWED for a valid token (BLOCKED for an invalid one)
//     unless a rule says otherwise; each authorization asked is kept in state.authorizations
// Default Tokens: APP-0001 (APP_USER, whitelist NEVER), 04A1B2C3D4 (RFID, ALLOWED), 04A1B2C3D5 (RFID, ALWAYS),
// 04FFFF0001 (RFID, NEVER, not valid), 04A1B2C3D6 (RFID, ALLOWED_OFFLINE), 04A1B2C3D7 (RFID, NEVER).
//
// Control API (plain JSON, no auth):
//   POST /control/register   {"versions_url","token_a"}: the credentials handshake with a CPO platform
//   POST /control/update-credentials, /control/unregister   PUT / DELETE at the CPO's credentials endpoint
//   POST /control/pull       {"module": "locations"|"tariffs"|"sessions"|"cdrs", "date_from"?, "date_to"?, "limit"?}:
//                            every page, following Link; violations logged per page: X-Total-Count / X-Limit
//                            missing, pages over the limit, a missing or malformed Link, filters dropped, objects
//                            invalid against the 2.2.1 tables. Answers {received, pages: [...]}.
//   POST /control/start      {"location_id","evse_uid"?,"connector_id"?,"token_uid"? (APP-0001),"authorization_reference"?}
//   POST /control/stop       {"session_id"}: STOP_SESSION; both answer {uid, http, status_code, response}; the
//                            CommandResult shows in GET /control/state under commands[uid].result
//   POST /control/token      {Token fields, "push"? (true)}: add or replace a Token and PUT it to the CPO's tokens RECEIVER
//   POST /control/token-patch {"uid","type"? (RFID), fields}: change a Token and PATCH the CPO with those fields
//   POST /control/token-get  {"uid","type"?}: GET the Token as the CPO's tokens RECEIVER holds it
//   POST /control/rule       {"uid","allowed"?: AllowedType,"delay_ms"?,"evse_uids"?}: what real-time authorization
//                            answers for that uid, after how long (longer than the CPO waits: a silent eMSP), and
//                            the EVSEs an ALLOWED answer lets it charge at (its location.evse_uids; default: those asked)
//   POST /control/down {"mode": "reset"|"503"}, POST /control/up; GET /control/state, /control/log?since=N,
//   GET /control/violations   as in ocpi_cpo.js
"use strict";
const { EmspPlatform } = require("./ocpi_emsp/platform");
const control = require("./ocpi_emsp/control");
const { ROUTES, versions, details } = require("./ocpi_emsp/routes");
const { Journal } = require("./ocpi_shared/transport");
const { run, verbosePrinter } = require("./ocpi_shared/serve");

const DEFAULTS = { "country-code": "NL", "party-id": "EMS", "max-limit": "3", host: "127.0.0.1" };

run("ocpi_emsp", DEFAULTS, ["port"], (opts, baseUrl) => {
  const party = { country_code: opts["country-code"], party_id: opts["party-id"] };
  const platform = new EmspPlatform({ party, baseUrl, maxLimit: Number(opts["max-limit"]), stateFile: opts.state, journal: new Journal(verbosePrinter(opts)) });
  const app = { platform, routes: ROUTES, versions, details, control, controlArgs: [platform], context: {} };
  return { app, ready: { versions_url: platform.versionsUrl, party } };
});
