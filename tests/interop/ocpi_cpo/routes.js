// The CPO's OCPI 2.2.1 interface: versions, version details, credentials (receiver of the handshake),
// locations / tariffs / sessions / cdrs (SENDER: paginated GET), commands (RECEIVER) and tokens (RECEIVER).
// Each handler gets (ctx) = {platform, charging, req, url, segments, who, body()} and returns
// {http, code, message, data, headers} or throws OcpiError.
"use strict";
const { O, ENUMS, validate, validatePatch, errorsOnly } = require("../ocpi_shared/spec");
const { STATUS, OcpiError, pageQuery, page, uuid } = require("../ocpi_shared/transport");
const { fetchEndpoints } = require("../ocpi_shared/credentials");

const MODULES = [
  ["credentials", "SENDER"],
  ["locations", "SENDER"],
  ["tariffs", "SENDER"],
  ["sessions", "SENDER"],
  ["cdrs", "SENDER"],
  ["commands", "RECEIVER"],
  ["tokens", "RECEIVER"],
];
const ok = (data, http = 200, headers) => ({ http, code: STATUS.SUCCESS, data, headers });
const notFound = (what) => new OcpiError(404, STATUS.UNKNOWN_LOCATION, `unknown ${what}`);
const invalid = (problems) => new OcpiError(200, STATUS.INVALID, problems.slice(0, 8).join("; "));

/**
 * Refuse (HTTP 200, OCPI 2001: the request reached the OCPI layer) a body with errors against ``schema``;
 * fields the 2.2.1 table does not have are tolerated but recorded as violations of the request.
 */
function valid(ctx, schema, body) {
  const problems = validate(schema, body);
  const errors = errorsOnly(problems);
  if (errors.length) throw invalid(errors);
  (ctx.warnings ||= []).push(...problems.filter((p) => !errors.includes(p)));
  return body;
}

// ------------------------------------------------------------------ configuration modules

function versions({ platform }) {
  return ok([{ version: "2.2.1", url: platform.detailsUrl }]);
}

function details({ platform }) {
  return ok({ version: "2.2.1", endpoints: MODULES.map(([identifier, role]) => ({ identifier, role, url: `${platform.detailsUrl}/${identifier}` })) });
}


async function register(ctx, again) {
  const { platform } = ctx;
  const credentials = valid(ctx, O.Credentials, ctx.body());
  const keys = credentials.roles.map((r) => `${r.role}/${r.country_code}/${r.party_id}`.toUpperCase());
  if (new Set(keys).size !== keys.length) throw invalid(["roles: every role needs a unique combination of role, party_id and country_code"]);
  if (!credentials.roles.some((r) => r.role === "EMSP")) throw new OcpiError(200, STATUS.NO_MATCHING_ENDPOINTS, "no EMSP role: this CPO platform connects to eMSPs");
  const { version_url, endpoints } = await fetchEndpoints(platform.journal, credentials.url, credentials.token);
  const tokenC = uuid();
  platform.state.registration = { token_b: credentials.token, token_c: tokenC, url: credentials.url, version_url, endpoints, roles: credentials.roles, registered_at: new Date().toISOString() };
  platform.state.token_a = null; // CREDENTIALS_TOKEN_A "MAY no longer be used"
  platform.save();
  if (!again && platform.scenario.push_on_register) setTimeout(() => ctx.charging.pushAll(), 50);
  return ok(platform.credentials(tokenC));
}

const credentials = {
  GET: ({ platform, who }) => ok(platform.credentials(who === "C" ? platform.registration.token_c : platform.state.token_a)),
  POST: (ctx) => {
    if (ctx.who === "C") throw new OcpiError(405, STATUS.CLIENT_ERROR, "already registered: use PUT to update the credentials");
    return register(ctx, false);
  },
  PUT: (ctx) => {
    if (ctx.who !== "C") throw new OcpiError(405, STATUS.CLIENT_ERROR, "not registered yet: use POST to register");
    return register(ctx, true);
  },
  DELETE: ({ platform, who, charging }) => {
    if (who !== "C") throw new OcpiError(405, STATUS.CLIENT_ERROR, "not registered");
    charging.stopTimers();
    platform.state.registration = null;
    platform.state.token_a = platform.initialTokenA; // the operator's token A admits a new registration
    platform.save();
    return ok(undefined);
  },
};

// ------------------------------------------------------------------ sender modules (paginated GET)

function list(objects, ctx) {
  const { platform, url } = ctx;
  const query = pageQuery(url.searchParams, platform.maxLimit);
  const { items, headers } = page(objects, query, `${platform.baseUrl}${url.pathname}${url.search}`, platform.maxLimit);
  return ok(items, 200, headers);
}

function locations(ctx) {
  const [locationId, evseUid, connectorId, extra] = ctx.segments;
  if (locationId === undefined) return list(ctx.platform.state.locations, ctx);
  if (extra !== undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, "no such resource");
  const location = ctx.platform.location(locationId);
  if (!location) throw notFound(`location ${locationId}`);
  if (evseUid === undefined) return ok(location);
  const evse = ctx.platform.evse(location, evseUid);
  if (!evse) throw notFound(`EVSE ${evseUid} at location ${locationId}`);
  if (connectorId === undefined) return ok(evse);
  const connector = evse.connectors.find((c) => c.id.toUpperCase() === connectorId.toUpperCase());
  if (!connector) throw notFound(`connector ${connectorId} of EVSE ${evseUid}`);
  return ok(connector);
}

function sessions(ctx) {
  const [sessionId, suffix, extra] = ctx.segments;
  if (sessionId === undefined) {
    if (ctx.method !== "GET") throw new OcpiError(405, STATUS.CLIENT_ERROR, `${ctx.method} is not allowed on the sessions list`);
    if (!ctx.url.searchParams.has("date_from")) throw new OcpiError(400, STATUS.INVALID, "date_from is required for GET sessions (mod_sessions)");
    return list(ctx.platform.state.sessions, ctx);
  }
  if (ctx.method !== "PUT" || suffix !== "charging_preferences" || extra !== undefined) throw new OcpiError(405, STATUS.CLIENT_ERROR, "only PUT {session_id}/charging_preferences is allowed here");
  const session = ctx.platform.session(sessionId);
  if (!session) throw new OcpiError(404, STATUS.INVALID, `unknown session ${sessionId}`);
  valid(ctx, O.ChargingPreferences, ctx.body());
  const evse = ctx.platform.evse(ctx.platform.location(session.location_id), session.evse_uid);
  if (!evse || !(evse.capabilities || []).includes("CHARGING_PREFERENCES_CAPABLE")) throw new OcpiError(404, STATUS.INVALID, `EVSE ${session.evse_uid} is not CHARGING_PREFERENCES_CAPABLE`);
  return ok("ACCEPTED");
}

// ------------------------------------------------------------------ receiver modules

async function commands(ctx) {
  const [command, extra] = ctx.segments;
  if (ctx.method !== "POST") throw new OcpiError(405, STATUS.CLIENT_ERROR, "commands accept POST only");
  if (!ENUMS.CommandType.includes(command) || extra !== undefined) throw new OcpiError(404, STATUS.INVALID, `unknown command ${command}`);
  const body = ctx.body();
  const schema = { START_SESSION: O.StartSession, STOP_SESSION: O.StopSession, RESERVE_NOW: O.ReserveNow, CANCEL_RESERVATION: O.CancelReservation, UNLOCK_CONNECTOR: O.UnlockConnector }[command];
  valid(ctx, schema, body);
  const answer = command === "START_SESSION" ? ctx.charging.startCommand(body, ctx.correlation) : command === "STOP_SESSION" ? ctx.charging.stopCommand(body, ctx.correlation) : { result: "NOT_SUPPORTED", timeout: ctx.platform.scenario.command_timeout, message: [{ language: "en", text: `${command} is not supported by this CPO` }] };
  if (answer.code) return { http: 200, code: answer.code, message: answer.message, data: answer.response };
  return ok(answer);
}

function tokens(ctx) {
  const { platform } = ctx;
  const [countryCode, partyId, uid, extra] = ctx.segments;
  if (uid === undefined || extra !== undefined) throw new OcpiError(404, STATUS.CLIENT_ERROR, "tokens: use {country_code}/{party_id}/{token_uid}[?type=]");
  const type = ctx.url.searchParams.get("type") || "RFID";
  if (!ENUMS.TokenType.includes(type)) throw new OcpiError(400, STATUS.INVALID, `type=${type} is not a TokenType`);
  const emsp = platform.emsp;
  if (countryCode.toUpperCase() !== emsp.country_code.toUpperCase() || partyId.toUpperCase() !== emsp.party_id.toUpperCase()) throw new OcpiError(404, STATUS.CLIENT_ERROR, `${countryCode}/${partyId} is not a role of the registered eMSP`);
  const same = (t) => t.uid.toUpperCase() === uid.toUpperCase() && t.type === type && t.country_code.toUpperCase() === countryCode.toUpperCase() && t.party_id.toUpperCase() === partyId.toUpperCase();
  const index = platform.state.tokens.findIndex(same);
  if (ctx.method === "GET") {
    if (index < 0) throw new OcpiError(404, STATUS.UNKNOWN_TOKEN, `unknown token ${uid} (${type})`);
    return ok(platform.state.tokens[index]);
  }
  const body = ctx.body();
  if (ctx.method === "PUT") {
    valid(ctx, O.Token, body);
    const mismatch = [["country_code", countryCode], ["party_id", partyId], ["uid", uid], ["type", type]].filter(([k, v]) => String(body[k]).toUpperCase() !== v.toUpperCase());
    if (mismatch.length) throw invalid(mismatch.map(([k, v]) => `${k}: ${body[k]} differs from the URL's ${v}`));
    if (index < 0) platform.state.tokens.push(body);
    else platform.state.tokens[index] = body;
    platform.touch();
    return ok(undefined, index < 0 ? 201 : 200);
  }
  if (ctx.method === "PATCH") {
    const problems = validatePatch(O.Token, body);
    if (errorsOnly(problems).length) throw invalid(errorsOnly(problems));
    (ctx.warnings ||= []).push(...problems.filter((x) => x.endsWith(": unknown field")));
    if (index < 0) throw new OcpiError(404, STATUS.UNKNOWN_TOKEN, `unknown token ${uid} (${type}): PUT it first`);
    for (const k of ["country_code", "party_id", "uid", "type"]) if (body[k] !== undefined && String(body[k]).toUpperCase() !== String(platform.state.tokens[index][k]).toUpperCase()) throw invalid([`${k} cannot be changed by PATCH`]);
    Object.assign(platform.state.tokens[index], body);
    platform.touch();
    return ok(undefined);
  }
  throw new OcpiError(405, STATUS.CLIENT_ERROR, `${ctx.method} is not allowed on tokens`);
}

/** module -> {methods allowed, handler}. */
const ROUTES = {
  credentials: { methods: ["GET", "POST", "PUT", "DELETE"], handler: (ctx) => credentials[ctx.method](ctx) },
  locations: { methods: ["GET"], handler: locations },
  tariffs: { methods: ["GET"], handler: (ctx) => { if (ctx.segments.length) throw new OcpiError(404, STATUS.CLIENT_ERROR, "tariffs has no object URLs on the sender interface"); return list(ctx.platform.state.tariffs, ctx); } }, // prettier-ignore
  sessions: { methods: ["GET", "PUT"], handler: sessions },
  cdrs: { methods: ["GET"], handler: (ctx) => { if (ctx.segments.length) throw new OcpiError(404, STATUS.CLIENT_ERROR, "cdrs has no object URLs on the sender interface"); return list(ctx.platform.state.cdrs, ctx); } }, // prettier-ignore
  commands: { methods: ["POST"], handler: commands },
  tokens: { methods: ["GET", "PUT", "PATCH"], handler: tokens },
};

module.exports = { ROUTES, versions, details, MODULES };
