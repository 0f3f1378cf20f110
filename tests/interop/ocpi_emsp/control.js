// The control API of the stand-in eMSP (plain JSON, no auth; documented at the top of ../ocpi_emsp.js): it
// registers with a CPO, pulls its modules page by page checking the pagination, sends commands, pushes Tokens.
"use strict";
const { O, ENUMS, validate, errorsOnly } = require("../ocpi_shared/spec");
const { send, uuid } = require("../ocpi_shared/transport");
const { fetchEndpoints } = require("../ocpi_shared/credentials");
const { ControlError, outage } = require("../ocpi_shared/serve");

const SCHEMAS = { locations: O.Location, tariffs: O.Tariff, sessions: O.Session, cdrs: O.CDR };
const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

/** The CPO's Tokens RECEIVER URL of ``token``: {tokens}/{country_code}/{party_id}/{uid}?type={type}. */
function tokenUrl(p, token) {
  const base = p.endpoint("tokens", "RECEIVER");
  return base && `${base.replace(/\/+$/, "")}/${token.country_code}/${token.party_id}/${encodeURIComponent(token.uid)}?type=${token.type}`;
}

function need(body, ...fields) {
  const missing = fields.filter((f) => body[f] === undefined);
  if (missing.length) throw new ControlError(400, `missing ${missing.join(", ")}`);
}

function registered(platform) {
  if (!platform.registration || !platform.registration.their_token) throw new ControlError(409, "not registered with a CPO");
  return platform.registration;
}

/** The credentials handshake as its Sender: versions and details with token A, then POST our token. */
async function register(platform, body) {
  need(body, "versions_url", "token_a");
  const { version_url, endpoints } = await fetchEndpoints(platform.journal, body.versions_url, body.token_a).catch((e) => {
    throw new ControlError(502, e.message);
  });
  const ourToken = uuid();
  platform.state.registration = { our_token: null, pending_token: ourToken, their_token: null, url: body.versions_url, version_url, endpoints, roles: [] };
  const url = endpoints.credentials.SENDER || endpoints.credentials.RECEIVER;
  const r = await send(platform.journal, "POST", url, platform.credentials(ourToken), { token: body.token_a, functional: false, purpose: "credentials POST", expect: O.Credentials });
  if (!r.ok) {
    platform.state.registration = null;
    return { ok: false, http: r.http, status_code: r.status_code, error: r.error || r.status_message };
  }
  Object.assign(platform.state.registration, { our_token: ourToken, pending_token: null, their_token: r.data.token, roles: r.data.roles });
  platform.save();
  return { ok: true, cpo: platform.counterpart };
}

/** PUT (new tokens both ways) or DELETE (unregister) at the CPO's credentials endpoint. */
async function credentialsAtCpo(platform, method) {
  const reg = registered(platform);
  const url = reg.endpoints.credentials.SENDER || reg.endpoints.credentials.RECEIVER;
  const ourToken = uuid();
  if (method === "PUT") reg.pending_token = ourToken;
  const r = await platform.toCpo(method, url, method === "PUT" ? platform.credentials(ourToken) : undefined, { purpose: `credentials ${method}`, functional: false, expect: method === "PUT" ? O.Credentials : undefined });
  if (!r.ok) return { ok: false, http: r.http, status_code: r.status_code, error: r.error || r.status_message };
  if (method === "PUT") Object.assign(reg, { our_token: ourToken, pending_token: null, their_token: r.data.token, roles: r.data.roles });
  else platform.state.registration = null;
  platform.save();
  return { ok: true };
}

/** GET a CPO SENDER module page by page (Link rel="next"), checking each page's pagination and objects. */
async function pull(platform, body) {
  need(body, "module");
  if (!SCHEMAS[body.module]) throw new ControlError(400, `module must be one of ${Object.keys(SCHEMAS).join(", ")}`);
  const base = platform.endpoint(body.module, "SENDER");
  if (!base) throw new ControlError(409, `the CPO lists no ${body.module} SENDER endpoint`);
  const first = new URL(base);
  for (const p of ["date_from", "date_to", "limit"]) if (body[p] !== undefined) first.searchParams.set(p, String(body[p]));
  let url = first.toString();
  const pages = [];
  let received = 0;
  while (url && pages.length < 1000) {
    const r = await platform.toCpo("GET", url, undefined, { purpose: `${body.module} GET` });
    const entry = platform.journal.entries[platform.journal.entries.length - 1];
    if (!r.ok || !Array.isArray(r.data)) break;
    const total = r.headers["x-total-count"];
    const limit = r.headers["x-limit"];
    const link = /^<([^>]+)>\s*;\s*rel="next"$/.exec(r.headers.link || "");
    const asked = new URL(url);
    const offset = Number(asked.searchParams.get("offset") || 0);
    const problems = [];
    if (!/^\d+$/.test(total || "")) problems.push(`X-Total-Count is ${total}, not an integer`);
    if (!/^\d+$/.test(limit || "")) problems.push(`X-Limit is ${limit}, not an integer`);
    if (Number(limit) < r.data.length) problems.push(`${r.data.length} objects in a page whose X-Limit is ${limit}`);
    if (asked.searchParams.get("limit") && r.data.length > Number(asked.searchParams.get("limit"))) problems.push(`more objects than the limit asked`);
    if (r.headers.link && !link) problems.push(`Link is not <url>; rel="next": ${r.headers.link}`);
    if (!link && offset + r.data.length < Number(total)) problems.push(`no Link to a next page though X-Total-Count is ${total}`);
    if (link) for (const p of ["date_from", "date_to"]) if (body[p] !== undefined && new URL(link[1]).searchParams.get(p) !== String(body[p])) problems.push(`the next Link drops ${p}`);
    r.data.forEach((o, i) => problems.push(...errorsOnly(validate(SCHEMAS[body.module], o, `data[${i}]`))));
    entry.violations.push(...problems);
    for (const o of r.data) if (o && o.id) platform.state[body.module][[o.country_code, o.party_id, o.id].join("/").toUpperCase()] = o;
    received += r.data.length;
    pages.push({ url, count: r.data.length, total: Number(total), limit: Number(limit), problems });
    url = link ? link[1] : null;
  }
  platform.save();
  return { received, pages };
}

/** START_SESSION / STOP_SESSION to the CPO's commands RECEIVER, with a response_url naming this command. */
async function command(platform, name, object) {
  registered(platform);
  const base = platform.endpoint("commands", "RECEIVER");
  if (!base) throw new ControlError(409, "the CPO lists no commands RECEIVER endpoint");
  const uid = platform.nextId("command", "CMD");
  object.response_url = `${platform.detailsUrl}/commands/${name}/${uid}`;
  platform.state.commands[uid] = { command: name, request: object, response: null, result: null };
  const r = await platform.toCpo("POST", `${base.replace(/\/+$/, "")}/${name}`, object, { purpose: name, expect: O.CommandResponse });
  platform.state.commands[uid].response = r.data || null;
  platform.save();
  return { uid, http: r.http, status_code: r.status_code, response: r.data, error: r.error };
}

const POST = {
  register: (p, body) => register(p, body),
  "update-credentials": (p) => credentialsAtCpo(p, "PUT"),
  unregister: (p) => credentialsAtCpo(p, "DELETE"),
  pull: (p, body) => pull(p, body),
  start: (p, body) => {
    need(body, "location_id");
    const token = p.state.tokens.find((t) => t.uid === (body.token_uid || "APP-0001"));
    if (!token) throw new ControlError(404, `unknown token ${body.token_uid}`);
    const object = { token, location_id: body.location_id };
    for (const f of ["evse_uid", "connector_id", "authorization_reference"]) if (body[f] !== undefined) object[f] = body[f];
    return command(p, "START_SESSION", object);
  },
  stop: (p, body) => {
    need(body, "session_id");
    return command(p, "STOP_SESSION", { session_id: body.session_id });
  },
  token: async (p, body) => {
    const { push = true, ...fields } = body;
    const token = { country_code: p.party.country_code, party_id: p.party.party_id, last_updated: stamp(), ...fields };
    const problems = errorsOnly(validate(O.Token, token));
    if (problems.length) throw new ControlError(400, problems.join("; "));
    p.state.tokens = [...p.state.tokens.filter((t) => !(t.uid === token.uid && t.type === token.type)), token];
    p.save();
    if (!push) return { token, pushed: false };
    const r = await p.toCpo("PUT", tokenUrl(p, token), token, { purpose: "Token PUT" });
    return { token, pushed: !!r.ok, http: r.http, status_code: r.status_code, skipped: r.skipped };
  },
  "token-patch": async (p, body) => {
    need(body, "uid");
    const { uid, type = "RFID", ...changes } = body;
    const token = p.state.tokens.find((t) => t.uid === uid && t.type === type);
    if (!token) throw new ControlError(404, `unknown token ${uid} (${type})`);
    const patch = { ...changes, last_updated: stamp() };
    Object.assign(token, patch);
    p.save();
    const r = await p.toCpo("PATCH", tokenUrl(p, token), patch, { purpose: "Token PATCH" });
    return { token, pushed: !!r.ok, http: r.http, status_code: r.status_code, skipped: r.skipped };
  },
  "token-get": async (p, body) => {
    need(body, "uid");
    const url = tokenUrl(p, { country_code: p.party.country_code, party_id: p.party.party_id, uid: body.uid, type: body.type || "RFID" });
    const r = await p.toCpo("GET", url, undefined, { purpose: "Token GET", expect: O.Token });
    return { http: r.http, status_code: r.status_code, data: r.data };
  },
  rule: (p, body) => {
    need(body, "uid");
    if (body.allowed !== undefined && !ENUMS.AllowedType.includes(body.allowed)) throw new ControlError(400, `allowed must be one of ${ENUMS.AllowedType.join(", ")}`);
    if (body.delay_ms !== undefined && !(Number.isInteger(body.delay_ms) && body.delay_ms >= 0)) throw new ControlError(400, "delay_ms must be an integer >= 0");
    if (body.evse_uids !== undefined && !(Array.isArray(body.evse_uids) && body.evse_uids.every((u) => typeof u === "string"))) throw new ControlError(400, "evse_uids must be a list of EVSE uids");
    p.state.rules[body.uid.toUpperCase()] = { allowed: body.allowed, delay_ms: body.delay_ms, evse_uids: body.evse_uids };
    p.save();
    return { rules: p.state.rules };
  },
  down: (p, body) => outage.down(p, body),
  up: (p) => outage.up(p),
};

const GET = {
  state: (p) => ({ party: p.party, versions_url: p.versionsUrl, ...p.state }),
  log: (p, query) => outage.log(p, query),
  violations: (p) => outage.violations(p),
};

module.exports = { POST, GET };
