// The eMSP's OCPI 2.2.1 interface: versions, details, credentials (after the handshake: GET, PUT, DELETE),
// locations / tariffs / sessions / cdrs (RECEIVER: the CPO pushes its objects, each checked against the 2.2.1
// tables and against the URL), commands (SENDER: CommandResults at the response_url it gave), tokens (SENDER:
// the paginated list, and real-time authorization).
"use strict";
const { O, ENUMS, validate, validatePatch, errorsOnly } = require("../ocpi_shared/spec");
const { STATUS, OcpiError, pageQuery, page, uuid } = require("../ocpi_shared/transport");
const { fetchEndpoints } = require("../ocpi_shared/credentials");

const MODULES = [["credentials", "SENDER"], ["locations", "RECEIVER"], ["tariffs", "RECEIVER"], ["sessions", "RECEIVER"], ["cdrs", "RECEIVER"], ["commands", "SENDER"], ["tokens", "SENDER"]];
const ok = (data, http = 200, headers) => ({ http, code: STATUS.SUCCESS, data, headers });
const invalid = (problems) => new OcpiError(200, STATUS.INVALID, problems.slice(0, 8).join("; "));
const key = (...parts) => parts.map((p) => String(p).toUpperCase()).join("/");

/** Refuse (200 / 2001) errors against ``schema`` (or the PATCH rules); unknown fields become violations. */
function checked(ctx, schema, body, patch = false) {
  const problems = patch ? validatePatch(schema, body) : validate(schema, body);
  const errors = errorsOnly(problems);
  if (errors.length) throw invalid(errors);
  (ctx.warnings ||= []).push(...problems.filter((p) => !errors.includes(p)));
  return body;
}

/** The URL's {country_code}/{party_id} must be the registered CPO's, and the body's the same (PUT). */
function owner(ctx, countryCode, partyId, body) {
  if (countryCode === undefined || partyId === undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, "{country_code}/{party_id} missing in the URL");
  if (!ctx.platform.ownedByCpo(countryCode, partyId)) throw new OcpiError(404, STATUS.CLIENT_ERROR, `${countryCode}/${partyId} is not a CPO role of the registered platform`);
  if (body && (key(body.country_code) !== key(countryCode) || key(body.party_id) !== key(partyId))) throw invalid([`country_code/party_id ${body.country_code}/${body.party_id} differ from the URL's ${countryCode}/${partyId}`]);
}

const sameId = (body, field, value) => {
  if (body[field] !== undefined && key(body[field]) !== key(value)) throw invalid([`${field} ${body[field]} differs from the URL's ${value}`]);
};

function versions({ platform }) {
  return ok([{ version: "2.2.1", url: platform.detailsUrl }]);
}

function details({ platform }) {
  return ok({ version: "2.2.1", endpoints: MODULES.map(([identifier, role]) => ({ identifier, role, url: `${platform.detailsUrl}/${identifier}` })) });
}

const credentials = {
  GET: ({ platform }) => ok(platform.credentials(platform.registration.our_token)),
  POST: () => {
    throw new OcpiError(405, STATUS.CLIENT_ERROR, "already registered: use PUT to update the credentials");
  },
  PUT: async (ctx) => {
    const body = checked(ctx, O.Credentials, ctx.body());
    const { version_url, endpoints } = await fetchEndpoints(ctx.platform.journal, body.url, body.token);
    const ourToken = uuid();
    Object.assign(ctx.platform.registration, { their_token: body.token, url: body.url, version_url, endpoints, roles: body.roles, our_token: ourToken });
    ctx.platform.save();
    return ok(ctx.platform.credentials(ourToken));
  },
  DELETE: ({ platform }) => {
    platform.state.registration = null;
    platform.save();
    return ok(undefined);
  },
};

// ------------------------------------------------------------------ receivers of the CPO's objects

const LEVELS = [O.Location, O.EVSE, O.Connector];

function locations(ctx) {
  const { platform } = ctx;
  const [cc, pid, locationId, evseUid, connectorId, extra] = ctx.segments;
  if (locationId === undefined || extra !== undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, "locations/{country_code}/{party_id}/{location_id}[/{evse_uid}[/{connector_id}]]");
  const level = connectorId !== undefined ? 2 : evseUid !== undefined ? 1 : 0;
  const body = ctx.method === "GET" ? null : ctx.body();
  owner(ctx, cc, pid, level === 0 && ctx.method === "PUT" ? body : null);
  const stored = platform.state.locations[key(cc, pid, locationId)];
  const evse = stored && level >= 1 ? (stored.evses || []).find((e) => key(e.uid) === key(evseUid)) : null;
  const connector = evse && level === 2 ? evse.connectors.find((c) => key(c.id) === key(connectorId)) : null;
  const target = [stored, evse, connector][level];
  if (ctx.method === "GET") {
    if (!target) throw new OcpiError(404, STATUS.UNKNOWN_LOCATION, "unknown location, EVSE or connector");
    return ok(target);
  }
  checked(ctx, LEVELS[level], body, ctx.method === "PATCH");
  sameId(body, ["id", "uid", "id"][level], [locationId, evseUid, connectorId][level]);
  if (level > 0 && !(level === 1 ? stored : evse)) throw new OcpiError(404, STATUS.UNKNOWN_LOCATION, "the parent location or EVSE is unknown: PUT it first");
  if (ctx.method === "PATCH" && !target) throw new OcpiError(404, STATUS.UNKNOWN_LOCATION, "unknown object: PUT it first");
  if (ctx.method === "PUT") {
    if (level === 0) platform.state.locations[key(cc, pid, locationId)] = body;
    else if (level === 1) stored.evses = [...(stored.evses || []).filter((e) => e !== evse), body];
    else evse.connectors = [...evse.connectors.filter((c) => c !== connector), body];
  } else Object.assign(target, body);
  for (const parent of [stored, evse].slice(0, level)) parent.last_updated = body.last_updated; // the parents' last_updated follows
  platform.save();
  return ok(undefined, ctx.method === "PUT" && !target ? 201 : 200);
}

function tariffs(ctx) {
  const [cc, pid, id, extra] = ctx.segments;
  if (id === undefined || extra !== undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, "tariffs/{country_code}/{party_id}/{tariff_id}");
  const body = ctx.method === "PUT" ? ctx.body() : null;
  owner(ctx, cc, pid, body);
  const k = key(cc, pid, id);
  const stored = ctx.platform.state.tariffs[k];
  if (ctx.method === "PUT") {
    checked(ctx, O.Tariff, body);
    sameId(body, "id", id);
    ctx.platform.state.tariffs[k] = body;
  } else if (!stored) throw new OcpiError(404, STATUS.CLIENT_ERROR, `unknown tariff ${id}`);
  else if (ctx.method === "GET") return ok(stored);
  else delete ctx.platform.state.tariffs[k];
  ctx.platform.save();
  return ok(undefined, ctx.method === "PUT" && !stored ? 201 : 200);
}

function sessions(ctx) {
  const [cc, pid, id, extra] = ctx.segments;
  if (id === undefined || extra !== undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, "sessions/{country_code}/{party_id}/{session_id} (no deeper URLs: mod_sessions)");
  const body = ctx.method === "GET" ? null : ctx.body();
  owner(ctx, cc, pid, ctx.method === "PUT" ? body : null);
  const k = key(cc, pid, id);
  const stored = ctx.platform.state.sessions[k];
  if (ctx.method === "GET") {
    if (!stored) throw new OcpiError(404, STATUS.CLIENT_ERROR, `unknown session ${id}`);
    return ok(stored);
  }
  checked(ctx, O.Session, body, ctx.method === "PATCH");
  sameId(body, "id", id);
  if (ctx.method === "PUT") ctx.platform.state.sessions[k] = body;
  else if (!stored) throw new OcpiError(404, STATUS.CLIENT_ERROR, `unknown session ${id}: PUT it first`);
  else {
    const { charging_periods: periods, ...rest } = body; // PATCH adds ChargingPeriods (mod_sessions)
    Object.assign(stored, rest);
    if (periods && periods.length) stored.charging_periods = [...(stored.charging_periods || []), ...periods];
  }
  ctx.platform.save();
  return ok(undefined, ctx.method === "PUT" && !stored ? 201 : 200);
}

function cdrs(ctx) {
  const { platform } = ctx;
  if (ctx.method === "GET") {
    const cdr = platform.state.cdrs[key(...ctx.segments)];
    if (!cdr) throw new OcpiError(404, STATUS.CLIENT_ERROR, "unknown CDR");
    return ok(cdr);
  }
  if (ctx.segments.length) throw new OcpiError(404, STATUS.CLIENT_ERROR, "CDRs are POSTed to the cdrs endpoint itself");
  const body = checked(ctx, O.CDR, ctx.body());
  if (!platform.ownedByCpo(body.country_code, body.party_id)) throw invalid([`${body.country_code}/${body.party_id} is not a CPO role of the registered platform`]);
  const k = key(body.country_code, body.party_id, body.id);
  if (platform.state.cdrs[k]) throw new OcpiError(200, STATUS.CLIENT_ERROR, `CDR ${body.id} was already received (CDRs cannot be replaced: mod_cdrs)`);
  platform.state.cdrs[k] = body;
  platform.save();
  return ok(undefined, 201, { Location: `${platform.detailsUrl}/cdrs/${[body.country_code, body.party_id, body.id].map(encodeURIComponent).join("/")}` });
}

function commandResults(ctx) {
  const [command, uid, extra] = ctx.segments;
  const sent = ctx.platform.state.commands[uid];
  if (!sent || sent.command !== command || extra !== undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, `no ${command} ${uid} was sent to this response_url`);
  sent.result = checked(ctx, O.CommandResult, ctx.body());
  sent.result_at = new Date().toISOString();
  ctx.platform.save();
  return ok(undefined);
}

async function tokens(ctx) {
  const { platform } = ctx;
  if (ctx.method === "GET") {
    if (ctx.segments.length) throw new OcpiError(404, STATUS.CLIENT_ERROR, "the tokens SENDER interface has the list and {uid}/authorize only");
    const query = pageQuery(ctx.url.searchParams, platform.maxLimit);
    const { items, headers } = page(platform.state.tokens, query, `${platform.baseUrl}${ctx.url.pathname}${ctx.url.search}`, platform.maxLimit);
    return ok(items, 200, headers);
  }
  const [uid, action, extra] = ctx.segments;
  if (action !== "authorize" || extra !== undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, "real-time authorization is POST {token_uid}/authorize");
  const type = ctx.url.searchParams.get("type") || "RFID";
  if (!ENUMS.TokenType.includes(type)) throw new OcpiError(400, STATUS.INVALID, `type=${type} is not a TokenType`);
  const token = platform.state.tokens.find((t) => key(t.uid) === key(uid) && t.type === type);
  if (!token) throw new OcpiError(404, STATUS.UNKNOWN_TOKEN, `unknown token ${uid} (${type})`);
  const text = ctx.body;
  let where = null;
  try {
    where = text();
  } catch (exc) {
    if (!/empty/.test(exc.message)) throw exc;
  }
  if (!where) throw new OcpiError(200, STATUS.NOT_ENOUGH_INFO, "no LocationReferences: this eMSP authorizes per location");
  checked(ctx, O.LocationReferences, where);
  (ctx.warnings ||= []).push(...locationProblems(platform, where));
  const rule = platform.state.rules[key(uid)] || {};
  const allowed = rule.allowed || (token.valid ? "ALLOWED" : "BLOCKED");
  const info = { allowed, token };
  const location = rule.evse_uids ? { location_id: where.location_id, evse_uids: rule.evse_uids } : where; // the EVSEs it allows
  if (allowed === "ALLOWED") Object.assign(info, { location, authorization_reference: platform.nextId("authorization", "AUTH") });
  platform.state.authorizations.push({ uid, type, location: where, allowed, at: new Date().toISOString() });
  platform.save();
  if (rule.delay_ms) await new Promise((resolve) => setTimeout(resolve, rule.delay_ms)); // a slow (or silent) eMSP
  return ok(info);
}

/** The LocationReferences of a real-time authorization against the CPO's Locations this eMSP holds: the
 *  Location must be one of them (when it holds any) and every EVSE uid one of that Location's EVSEs. */
function locationProblems(platform, where) {
  const held = Object.values(platform.state.locations);
  if (!held.length) return [];
  const location = held.find((l) => key(l.id) === key(where.location_id));
  if (!location) return [`authorize names location ${where.location_id}, which the CPO never published`];
  const evses = new Set((location.evses || []).map((e) => key(e.uid)));
  return (where.evse_uids || []).filter((u) => !evses.has(key(u))).map((u) => `authorize names EVSE ${u}, not one of location ${where.location_id}'s`);
}

const ROUTES = {
  credentials: { methods: ["GET", "POST", "PUT", "DELETE"], handler: (ctx) => credentials[ctx.method](ctx) },
  locations: { methods: ["GET", "PUT", "PATCH"], handler: locations },
  tariffs: { methods: ["GET", "PUT", "DELETE"], handler: tariffs },
  sessions: { methods: ["GET", "PUT", "PATCH"], handler: sessions },
  cdrs: { methods: ["GET", "POST"], handler: cdrs },
  commands: { methods: ["POST"], handler: commandResults },
  tokens: { methods: ["GET", "POST"], handler: tokens },
};

module.exports = { ROUTES, versions, details };
