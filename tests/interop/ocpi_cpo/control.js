// The control API of the stand-in CPO platform (plain JSON, no OCPI envelope, no authorization: local tests and
// the demo only). Documented at the top of ../ocpi_cpo.js.
"use strict";
const { O, ENUMS, validate, errorsOnly } = require("../ocpi_shared/spec");
const { now, uuid } = require("../ocpi_shared/transport");
const { ControlError, outage } = require("../ocpi_shared/serve");
const { DEFAULT_SCENARIO } = require("./platform");

const CHOICES = {
  start: ["accept", "refuse", "reject", "fail", "timeout", "occupied", "no_result"],
  stop: ["accept", "refuse", "reject", "fail", "timeout", "no_result"],
  cdr: ["push", "pull_only", "duplicate", "none"],
  signed: ["valid", "tampered", "foreign", "none"],
  authorize: ["never", "before_start"],
};


function need(body, ...fields) {
  const missing = fields.filter((f) => body[f] === undefined);
  if (missing.length) throw new ControlError(400, `missing ${missing.join(", ")}`);
}

function scenario(platform, { reset, ...body }) {
  for (const [key, value] of Object.entries(body)) {
    if (!(key in DEFAULT_SCENARIO)) throw new ControlError(400, `unknown scenario key ${key} (known: ${Object.keys(DEFAULT_SCENARIO).join(", ")})`);
    if (CHOICES[key] && !CHOICES[key].includes(value)) throw new ControlError(400, `${key} must be one of ${CHOICES[key].join(", ")}`);
    if (!CHOICES[key] && typeof value !== typeof DEFAULT_SCENARIO[key]) throw new ControlError(400, `${key} must be a ${typeof DEFAULT_SCENARIO[key]}`);
  }
  if (reset) Object.assign(platform.scenario, DEFAULT_SCENARIO);
  Object.assign(platform.scenario, body);
  return platform.scenario;
}

function findEvse(platform, body) {
  need(body, "location_id", "evse_uid");
  const location = platform.location(body.location_id);
  const evse = platform.evse(location, body.evse_uid);
  if (!evse) throw new ControlError(404, `unknown EVSE ${body.location_id}/${body.evse_uid}`);
  return { location, evse };
}

/** An RFID tap at an EVSE: whitelist from the Tokens cache where allowed, else real-time authorization. */
async function tap(platform, charging, body) {
  need(body, "uid");
  const { location, evse } = findEvse(platform, body);
  const type = body.type || "RFID";
  const known = platform.state.tokens.find((t) => t.uid.toUpperCase() === body.uid.toUpperCase() && t.type === type);
  let token = known;
  let authMethod = "WHITELIST";
  let reference;
  if (!known || known.whitelist !== "ALWAYS") {
    const info = await charging.authorizeAtEmsp(body.uid, type, location.id, evse.uid);
    if (!info) return { started: false, reason: "the eMSP did not authorize (unknown token or no answer)" };
    if (info.allowed !== "ALLOWED") return { started: false, reason: info.allowed };
    const allowedEvses = (info.location && info.location.evse_uids) || [];
    if (allowedEvses.length && !allowedEvses.includes(evse.uid)) return { started: false, reason: `allowed only at ${allowedEvses.join(", ")}` };
    [token, authMethod, reference] = [info.token, "AUTH_REQUEST", info.authorization_reference];
  } else if (!known.valid) return { started: false, reason: "token not valid" };
  const connector = evse.connectors[0];
  const cdrToken = { country_code: token.country_code, party_id: token.party_id, uid: token.uid, type: token.type, contract_id: token.contract_id };
  const session = await charging.begin({ token: cdrToken, location, evse, connector, authMethod, authorizationReference: reference });
  return { started: true, session_id: session.id };
}

/** GET the eMSP's Tokens (its SENDER interface), following the Link headers to the last page. */
async function pullTokens(platform) {
  let url = platform.endpoint("tokens", "SENDER");
  if (!url) throw new ControlError(409, "the eMSP has no tokens SENDER endpoint");
  let received = 0;
  const pages = [];
  while (url) {
    const r = await platform.toEmsp("GET", { url }, "", undefined, { purpose: "Tokens GET", push: false });
    pages.push({ http: r.http, status_code: r.status_code, total: r.headers && r.headers["x-total-count"], limit: r.headers && r.headers["x-limit"] });
    if (!r.ok || !Array.isArray(r.data)) break;
    const entry = platform.journal.entries[platform.journal.entries.length - 1];
    if (r.headers["x-total-count"] === undefined) entry.violations.push("paginated answer without X-Total-Count");
    if (r.headers["x-limit"] === undefined) entry.violations.push("paginated answer without X-Limit");
    for (const [i, t] of r.data.entries()) {
      const problems = errorsOnly(validate(O.Token, t, `data[${i}]`));
      if (problems.length) entry.violations.push(...problems);
      else {
        const at = platform.state.tokens.findIndex((k) => k.uid === t.uid && k.type === t.type);
        if (at < 0) platform.state.tokens.push(t);
        else platform.state.tokens[at] = t;
        received += 1;
      }
    }
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(r.headers.link || "");
    url = link ? link[1] : null;
  }
  platform.touch();
  return { received, pages };
}

/**
 * A completed session the eMSP never heard of (no Session pushes) and its CDR: pull only, or POSTed too
 * with ``"push": true`` (a CDR for a session id unknown to the eMSP).
 */
async function pastCdr(platform, charging, body) {
  need(body, "token");
  const { location, evse } = findEvse(platform, body);
  const problems = errorsOnly(validate(O.CdrToken, body.token, "token"));
  if (problems.length) throw new ControlError(400, problems.join("; "));
  const kwh = body.kwh ?? 5;
  const minutes = body.minutes ?? 30;
  const end = new Date();
  const start = new Date(end.getTime() - minutes * 60000);
  const stamp = (d) => d.toISOString().replace(/\.\d+Z$/, "Z");
  const connector = evse.connectors[0];
  const id = platform.nextId("session", "S");
  const session = {
    country_code: platform.party.country_code, party_id: platform.party.party_id, id, start_date_time: stamp(start), end_date_time: stamp(end), kwh, cdr_token: body.token,
    auth_method: "WHITELIST", location_id: location.id, evse_uid: evse.uid, connector_id: connector.id, meter_id: charging.meter.serial, currency: "EUR", charging_periods: [], status: "COMPLETED", last_updated: now(),
  };
  const meta = { wh: Math.round(kwh * 1000), register_start_wh: 0, started_ms: start.getTime(), tariff_id: (connector.tariff_ids || [])[0], signed: "none" };
  platform.state.sessions.push(session);
  platform.state.meta[id] = meta;
  const cdr = charging.cdr(session, meta, location, evse);
  platform.state.cdrs.push(cdr);
  platform.save();
  if (body.push) await charging.postCdr(cdr);
  return cdr;
}

/**
 * The CPO as the client of the eMSP's credentials module: PUT (a new token C for the eMSP, its new token B
 * back) or DELETE (unregister: both sides end automated communication).
 */
async function credentialsAtEmsp(platform, charging, method) {
  const reg = platform.registration;
  if (!reg) throw new ControlError(409, "not registered");
  const url = reg.endpoints.credentials.SENDER || reg.endpoints.credentials.RECEIVER;
  const tokenC = uuid();
  const body = method === "PUT" ? platform.credentials(tokenC) : undefined;
  const r = await platform.toEmsp(method, { url }, "", body, { purpose: `credentials ${method} by the CPO`, functional: false, push: false, expect: method === "PUT" ? O.Credentials : undefined });
  if (!r.ok) return { ok: false, http: r.http, status_code: r.status_code, error: r.error || r.status_message };
  if (method === "PUT") Object.assign(reg, { token_c: tokenC, token_b: r.data.token });
  else {
    charging.stopTimers();
    platform.state.registration = null;
    platform.state.token_a = platform.initialTokenA;
  }
  platform.save();
  return { ok: true };
}

/** POST /control/<name> handlers: (platform, charging, body) -> JSON. GET handlers take the query. */
const POST = {
  scenario: (p, c, body) => scenario(p, body),
  status: async (p, c, body) => {
    need(body, "status");
    if (!ENUMS.Status.includes(body.status)) throw new ControlError(400, `status must be one of ${ENUMS.Status.join(", ")}`);
    const { location, evse } = findEvse(p, body);
    const r = await c.setStatus(location, evse, body.status);
    return { pushed: !!r.ok, skipped: r.skipped, evse };
  },
  push: async (p, c, body) => {
    if (body.tariff) {
      const problems = errorsOnly(validate(O.Tariff, body.tariff));
      if (problems.length) throw new ControlError(400, problems.join("; "));
      const at = p.state.tariffs.findIndex((t) => t.id === body.tariff.id);
      if (at < 0) p.state.tariffs.push(body.tariff);
      else p.state.tariffs[at] = body.tariff;
      p.save();
      return { pushed: [!!(await c.pushTariff(body.tariff)).ok] };
    }
    return { pushed: await c.pushAll(body.location_id) };
  },
  connector: async (p, c, body) => {
    need(body, "connector_id", "tariff_ids");
    const { location, evse } = findEvse(p, body);
    const connector = evse.connectors.find((k) => k.id.toUpperCase() === String(body.connector_id).toUpperCase());
    if (!connector) throw new ControlError(404, `unknown connector ${body.connector_id} of ${location.id}/${evse.uid}`);
    const ids = body.tariff_ids;
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== "string" || !id || id.length > 36)) throw new ControlError(400, "tariff_ids must be a list of tariff ids (string(36))");
    const method = body.method || "PATCH";
    if (!["PATCH", "PUT"].includes(method)) throw new ControlError(400, "method must be PATCH or PUT");
    const r = await c.setConnectorTariffs(location, evse, connector, ids, method);
    return { pushed: !!r.ok, skipped: r.skipped, connector };
  },
  down: (p, c, body) => outage.down(p, body),
  up: (p) => outage.up(p),
  stop: async (p, c, body) => {
    need(body, "session_id");
    const cdr = await c.finish(body.session_id, "EV left (stopped at the charge point)");
    if (cdr === null) throw new ControlError(409, `session ${body.session_id} is not active`);
    return { stopped: body.session_id, cdr_id: cdr ? cdr.id : null };
  },
  tap: (p, c, body) => tap(p, c, body),
  "pull-tokens": (p) => pullTokens(p),
  cdr: (p, c, body) => pastCdr(p, c, body),
  "repost-cdr": async (p, c, body) => {
    need(body, "cdr_id");
    const cdr = p.state.cdrs.find((x) => x.id === body.cdr_id);
    if (!cdr) throw new ControlError(404, `unknown CDR ${body.cdr_id}`);
    const r = await c.postCdr(cdr);
    return { http: r.http, status_code: r.status_code, skipped: r.skipped };
  },
  revoke: (p) => {
    if (!p.registration) throw new ControlError(409, "not registered");
    p.registration.token_c = `revoked-${uuid()}`; // the eMSP's token C stops working: 401 from now on
    p.save();
    return { revoked: true };
  },
  unregister: async (p, c) => credentialsAtEmsp(p, c, "DELETE"),
  "update-credentials": async (p, c) => credentialsAtEmsp(p, c, "PUT"),
  "token-a": (p, c, body) => {
    need(body, "token");
    p.state.token_a = p.initialTokenA = String(body.token);
    p.save();
    return { token_a: p.state.token_a };
  },
};

const GET = {
  state: (p, c) => ({ party: p.party, versions_url: p.versionsUrl, token_a: p.state.token_a, registration: p.state.registration, scenario: p.scenario, down: p.outage, sessions: p.state.sessions, cdrs: p.state.cdrs, tokens: p.state.tokens, meter: { serial: c.meter.serial, ...c.meter.publicKey } }),
  log: (p, c, query) => outage.log(p, query),
  violations: (p) => outage.violations(p),
};

module.exports = { POST, GET };
