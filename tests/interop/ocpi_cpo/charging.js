// The charge points behind the CPO platform, simulated: START_SESSION / STOP_SESSION commands (mod_commands)
// answered with a CommandResponse and, asynchronously, a CommandResult POSTed to the eMSP's response_url;
// Sessions (mod_sessions) PUT when they start and PATCHed with kWh and ChargingPeriods while the EV charges;
// EVSE status PATCHes (mod_locations); a CDR (mod_cdrs) POSTed when a session ends, with the meter's signed
// OCMF Start/End values when the scenario asks for them. What happens is set by the platform's scenario.
"use strict";
const { O, validate, errorsOnly } = require("../ocpi_shared/spec");
const { STATUS, now } = require("../ocpi_shared/transport");
const { cost, round4 } = require("./tariff");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const BUSY = ["CHARGING", "BLOCKED", "RESERVED"];
const cdrToken = (t) => ({ country_code: t.country_code, party_id: t.party_id, uid: t.uid, type: t.type, contract_id: t.contract_id });

class Charging {
  constructor(platform, meter) {
    Object.assign(this, { platform, meter });
    this.inflight = new Map(); // session id -> its push being answered
  }
  get scenario() {
    return this.platform.scenario;
  }
  get journal() {
    return this.platform.journal;
  }
  response(result, text) {
    const answer = { result, timeout: this.scenario.command_timeout };
    if (text) answer.message = [{ language: "en", text }];
    return answer;
  }
  /** Our own objects are checked too: a problem in what this stand-in sends is a bug of the stand-in. */
  selfCheck(kind, schema, object) {
    const problems = errorsOnly(validate(schema, object, kind));
    if (problems.length) this.journal.add({ direction: "self", method: "CHECK", url: kind, violations: problems.map((p) => `stand-in sent an invalid ${kind}: ${p}`) });
    return object;
  }

  // ------------------------------------------------------------------ commands

  /** START_SESSION: the synchronous CommandResponse (or {code, message, response} for an OCPI error status). */
  startCommand(body, correlation) {
    const p = this.platform;
    const location = p.location(body.location_id);
    if (!location) return { code: STATUS.UNKNOWN_LOCATION, message: `unknown location ${body.location_id}`, response: this.response("REJECTED", "unknown location") };
    if (body.connector_id !== undefined && body.evse_uid === undefined) return { code: STATUS.INVALID, message: "evse_uid is required when connector_id is set", response: this.response("REJECTED") };
    const emsp = p.emsp;
    if (body.token.country_code.toUpperCase() !== emsp.country_code.toUpperCase() || body.token.party_id.toUpperCase() !== emsp.party_id.toUpperCase()) {
      return this.response("REJECTED", `token ${body.token.uid} is owned by ${body.token.country_code}/${body.token.party_id}, not by the registered eMSP`);
    }
    const evse = body.evse_uid === undefined ? location.evses.find((e) => e.status === "AVAILABLE") || location.evses[0] : p.evse(location, body.evse_uid);
    if (!evse) return { code: STATUS.UNKNOWN_LOCATION, message: `unknown EVSE ${body.evse_uid} at location ${location.id}`, response: this.response("REJECTED", "unknown EVSE") };
    const caps = evse.capabilities || [];
    if (caps.includes("START_SESSION_CONNECTOR_REQUIRED") && body.connector_id === undefined) return { code: STATUS.INVALID, message: `EVSE ${evse.uid} has START_SESSION_CONNECTOR_REQUIRED: connector_id is required`, response: this.response("REJECTED") };
    const connector = body.connector_id === undefined ? evse.connectors[0] : evse.connectors.find((c) => c.id.toUpperCase() === body.connector_id.toUpperCase());
    if (!connector) return { code: STATUS.UNKNOWN_LOCATION, message: `unknown connector ${body.connector_id} of EVSE ${evse.uid}`, response: this.response("REJECTED", "unknown connector") };
    if (!caps.includes("REMOTE_START_STOP_CAPABLE")) return this.response("NOT_SUPPORTED", `EVSE ${evse.uid} cannot be started remotely`);
    if (this.scenario.start === "refuse") return this.response("REJECTED", "refused by the scenario");
    setTimeout(() => this.startFlow(body, location, evse, connector, correlation).catch((e) => this.crash(e)), 0);
    return this.response("ACCEPTED");
  }

  async startFlow(body, location, evse, connector, correlation) {
    await sleep(this.scenario.result_delay_ms);
    let authorizationReference = body.authorization_reference;
    let result = { accept: "ACCEPTED", reject: "REJECTED", fail: "FAILED", timeout: "TIMEOUT", occupied: "EVSE_OCCUPIED", no_result: null }[this.scenario.start];
    if (result === "ACCEPTED" && BUSY.includes(evse.status)) result = "EVSE_OCCUPIED";
    else if (result === "ACCEPTED" && evse.status !== "AVAILABLE") result = "EVSE_INOPERATIVE";
    if (result === "ACCEPTED" && this.scenario.authorize === "before_start") {
      const info = await this.authorizeAtEmsp(body.token.uid, body.token.type, location.id, evse.uid, correlation);
      if (!info || info.allowed !== "ALLOWED") result = "REJECTED";
      else if (info.authorization_reference) authorizationReference = info.authorization_reference;
    }
    if (result === null) return; // no_result: the eMSP hears nothing within the timeout
    const sent = await this.commandResult(body.response_url, result, correlation);
    if (result !== "ACCEPTED" || !sent) return;
    await this.begin({ token: cdrToken(body.token), location, evse, connector, authMethod: "COMMAND", authorizationReference, correlation });
  }

  /** STOP_SESSION: the synchronous CommandResponse; the session ends after the CommandResult. */
  stopCommand(body, correlation) {
    const session = this.platform.session(body.session_id);
    if (!session) return this.response("UNKNOWN_SESSION", `unknown session ${body.session_id}`);
    const emsp = this.platform.emsp;
    if (session.cdr_token.country_code.toUpperCase() !== emsp.country_code.toUpperCase() || session.cdr_token.party_id.toUpperCase() !== emsp.party_id.toUpperCase()) return this.response("REJECTED", "the session is not one of this eMSP's");
    if (session.status !== "ACTIVE") return this.response("REJECTED", `session ${session.id} is ${session.status}`);
    if (this.scenario.stop === "refuse") return this.response("REJECTED", "refused by the scenario");
    setTimeout(async () => {
      try {
        await sleep(this.scenario.result_delay_ms);
        const result = { accept: "ACCEPTED", reject: "REJECTED", fail: "FAILED", timeout: "TIMEOUT", no_result: null }[this.scenario.stop];
        if (result === null) return;
        await this.commandResult(body.response_url, result, correlation);
        if (result === "ACCEPTED") await this.finish(session.id, "stopped by STOP_SESSION");
      } catch (e) {
        this.crash(e);
      }
    }, 0);
    return this.response("ACCEPTED");
  }

  async commandResult(responseUrl, result, correlation) {
    const r = await this.platform.toEmsp("POST", { url: responseUrl }, "", { result }, { purpose: `CommandResult ${result}`, correlation, push: false });
    return r.ok;
  }

  /** Real-time authorization (mod_tokens POST {uid}/authorize): the AuthorizationInfo, or null (unknown, error). */
  async authorizeAtEmsp(uid, type, locationId, evseUid, correlation) {
    const r = await this.platform.toEmsp("POST", "tokens", `${encodeURIComponent(uid)}/authorize?type=${type}`, { location_id: locationId, evse_uids: [evseUid] }, { purpose: "real-time authorization", expect: O.AuthorizationInfo, correlation, push: false });
    return r.ok ? r.data : null;
  }

  // ------------------------------------------------------------------ sessions

  async begin({ token, location, evse, connector, authMethod, authorizationReference, correlation }) {
    const p = this.platform;
    const at = new Date();
    const id = p.nextId("session", "S");
    const tariffId = (connector.tariff_ids || [])[0];
    const tariff = tariffId && p.tariff(tariffId);
    const registers = (p.state.registers ||= {});
    const registerStart = registers[evse.uid] ?? this.scenario.meter_start_wh;
    const session = {
      country_code: p.party.country_code, party_id: p.party.party_id, id, start_date_time: now(), kwh: 0, cdr_token: token, auth_method: authMethod,
      location_id: location.id, evse_uid: evse.uid, connector_id: connector.id, meter_id: this.meter.serial, currency: tariff ? tariff.currency : "EUR",
      charging_periods: [], status: "ACTIVE", last_updated: now(),
    };
    if (authorizationReference) session.authorization_reference = authorizationReference;
    if (tariff) session.total_cost = cost(tariff, { wh: 0, seconds: 0, start: at, timeZone: location.time_zone }).total;
    const meta = { wh: 0, pending: [], register_start_wh: registerStart, started_ms: at.getTime(), last_tick_ms: at.getTime(), correlation, tariff_id: tariffId, signed: this.scenario.signed };
    if (meta.signed !== "none") meta.begin = this.meter.record("B", registerStart, token.uid, evse.uid, at, meta.signed);
    p.state.sessions.push(session);
    p.state.meta[id] = meta;
    await this.setStatus(location, evse, "CHARGING", correlation);
    const pendingMs = this.scenario.pending_ms;
    if (pendingMs > 0) session.status = "PENDING";
    p.save();
    await this.push(id, "PUT", () => this.selfCheck("Session", O.Session, session), "Session PUT");
    if (pendingMs > 0) {
      await sleep(pendingMs); // the EV is plugged in: ACTIVE, and start_date_time moves to this moment
      Object.assign(session, { status: "ACTIVE", start_date_time: now(), last_updated: now() });
      Object.assign(meta, { started_ms: Date.now(), last_tick_ms: Date.now(), period_start_ms: Date.now() });
      await this.push(id, "PATCH", () => ({ status: "ACTIVE", start_date_time: session.start_date_time, last_updated: session.last_updated }), "Session PATCH (ACTIVE)");
    }
    this.run(session);
    return session;
  }

  /**
   * Send a Session PUT or PATCH once the session's previous push is answered, so they arrive in order. A PATCH
   * carries the ChargingPeriods not yet delivered (kept when the push is skipped or gets no answer). A PUT that
   * did not arrive, or a PATCH the eMSP answers 404 (it does not know the session), is followed by a PUT of the
   * whole Session (transport_and_format: "If the object doesn't exist, the client should do a PUT").
   */
  push(id, method, build, purpose) {
    const p = this.platform;
    const url = `${p.party.country_code}/${p.party.party_id}/${id}`;
    const previous = this.inflight.get(id) || Promise.resolve();
    const sent = previous.then(async () => {
      const meta = p.state.meta[id];
      const whole = () => this.selfCheck("Session", O.Session, p.session(id));
      if (method === "PATCH" && meta.needs_put) [method, build, purpose] = ["PUT", whole, `${purpose}, as a PUT`];
      const body = build();
      const periods = method === "PATCH" && meta.pending && meta.pending.length ? meta.pending.splice(0) : [];
      if (periods.length) body.charging_periods = periods;
      let r = await p.toEmsp(method, "sessions", url, body, { purpose, correlation: meta.correlation });
      let put = method === "PUT";
      if (!put && r.http === 404) {
        r = await p.toEmsp("PUT", "sessions", url, whole(), { purpose: `Session PUT after a 404 to ${purpose}`, correlation: meta.correlation });
        put = true;
      }
      const delivered = !(r.skipped || r.error);
      if (put) {
        meta.needs_put = !delivered;
        if (delivered) meta.pending = [];
      } else if (!delivered) meta.pending.unshift(...periods);
      return r;
    });
    const settled = sent.catch((e) => this.crash(e));
    this.inflight.set(id, settled);
    settled.then(() => this.inflight.get(id) === settled && this.inflight.delete(id));
    return settled;
  }

  /** Charge ``session``: every tick_ms the energy grows and a PATCH with kwh, a ChargingPeriod and total_cost goes out. */
  run(session) {
    const timer = setInterval(() => this.tick(session.id).catch((e) => this.crash(e)), this.scenario.tick_ms);
    this.platform.timers.set(session.id, timer);
  }

  /** Advance the session's energy to now; returns the new ChargingPeriod (null if nothing changed). */
  /**
   * Advance the session's energy to now (true if time passed). A ChargingPeriod is closed every period_ms (and
   * when the session ends, ``close``): not one per tick, as mod_sessions advises against too many periods.
   */
  advance(session, close = false) {
    const meta = this.platform.state.meta[session.id];
    const nowMs = Date.now();
    const seconds = (nowMs - meta.last_tick_ms) / 1000;
    if (seconds <= 0 && !close) return false;
    const wh = Math.round(this.scenario.kwh_per_second * 1000 * Math.max(seconds, 0));
    meta.wh += wh;
    meta.last_tick_ms = nowMs;
    meta.period_start_ms ??= meta.started_ms;
    meta.period_wh = (meta.period_wh || 0) + wh;
    if (close || nowMs - meta.period_start_ms >= this.scenario.period_ms) {
      const period = { start_date_time: new Date(meta.period_start_ms).toISOString().replace(/\.\d+Z$/, "Z"), dimensions: [{ type: "ENERGY", volume: meta.period_wh / 1000 }, { type: "TIME", volume: round4((nowMs - meta.period_start_ms) / 3600000) }] };
      if (meta.tariff_id) period.tariff_id = meta.tariff_id;
      session.charging_periods.push(period);
      (meta.pending ||= []).push(period);
      Object.assign(meta, { period_start_ms: nowMs, period_wh: 0 });
    }
    session.kwh = meta.wh / 1000;
    session.last_updated = now();
    const tariff = meta.tariff_id && this.platform.tariff(meta.tariff_id);
    if (tariff) session.total_cost = cost(tariff, { wh: meta.wh, seconds: (nowMs - meta.started_ms) / 1000, start: new Date(meta.started_ms), timeZone: this.platform.location(session.location_id).time_zone }).total;
    return true;
  }


  async tick(id) {
    const p = this.platform;
    const session = p.session(id);
    if (!session || session.status !== "ACTIVE") return;
    if (this.inflight.has(id) || !this.advance(session)) return; // a slow eMSP: the next PATCH carries it all
    p.touch();
    await this.push(id, "PATCH", () => ({ kwh: session.kwh, last_updated: session.last_updated, ...(session.total_cost ? { total_cost: session.total_cost } : {}) }), "Session PATCH");
  }

  /** End a session (STOP_SESSION accepted, or the EV left): final Session PATCH, EVSE AVAILABLE, the CDR. */
  async finish(id, reason) {
    const p = this.platform;
    const session = p.session(id);
    if (!session || session.status !== "ACTIVE") return null;
    clearInterval(p.timers.get(id));
    p.timers.delete(id);
    this.advance(session, true);
    const meta = p.state.meta[id];
    session.status = "COMPLETED";
    session.end_date_time = now();
    session.last_updated = session.end_date_time;
    const location = p.location(session.location_id);
    const evse = p.evse(location, session.evse_uid);
    (p.state.registers ||= {})[evse.uid] = meta.register_start_wh + meta.wh;
    if (meta.signed !== "none") meta.end = this.meter.record("E", meta.register_start_wh + meta.wh, session.cdr_token.uid, evse.uid, new Date(), meta.signed);
    meta.reason = reason;
    const patch = { status: "COMPLETED", end_date_time: session.end_date_time, kwh: session.kwh, last_updated: session.last_updated };
    if (session.total_cost) patch.total_cost = session.total_cost;
    await this.push(id, "PATCH", () => patch, "Session PATCH (COMPLETED)");
    await this.setStatus(location, evse, "AVAILABLE", meta.correlation);
    const mode = this.scenario.cdr;
    if (mode === "none") return p.save();
    const cdr = this.cdr(session, meta, location, evse);
    p.state.cdrs.push(cdr);
    p.save();
    if (this.scenario.cdr_delay_ms > 0 && mode !== "pull_only") await sleep(this.scenario.cdr_delay_ms);
    if (mode === "push" || mode === "duplicate") await this.postCdr(cdr, meta.correlation);
    if (mode === "duplicate") await this.postCdr(cdr, meta.correlation);
    return cdr;
  }

  async postCdr(cdr, correlation) {
    const r = await this.platform.toEmsp("POST", "cdrs", "", cdr, { purpose: `CDR POST ${cdr.id}`, correlation });
    if (r.ok && !r.headers.location) this.journal.entries[this.journal.entries.length - 1].violations.push("CDR POST answer without the Location header (mod_cdrs: required)");
    return r;
  }

  cdr(session, meta, location, evse) {
    const p = this.platform;
    const connector = evse.connectors.find((c) => c.id === session.connector_id) || evse.connectors[0];
    const tariff = meta.tariff_id && p.tariff(meta.tariff_id);
    const seconds = (Date.parse(session.end_date_time) - Date.parse(session.start_date_time)) / 1000;
    const costs = tariff ? cost(tariff, { wh: meta.wh, seconds, start: new Date(meta.started_ms), timeZone: location.time_zone }) : { total: { excl_vat: 0, incl_vat: 0 } };
    const offset = Number(this.scenario.cost_offset) || 0;
    const dims = [{ type: "ENERGY", volume: meta.wh / 1000 }, { type: "TIME", volume: round4(seconds / 3600) }];
    const cdr = {
      country_code: p.party.country_code, party_id: p.party.party_id, id: p.nextId("cdr", "CDR"), start_date_time: session.start_date_time, end_date_time: session.end_date_time,
      session_id: session.id, cdr_token: session.cdr_token, auth_method: session.auth_method,
      cdr_location: { id: location.id, name: location.name, address: location.address, city: location.city, postal_code: location.postal_code, country: location.country, coordinates: location.coordinates, evse_uid: evse.uid, evse_id: evse.evse_id || "#NA", connector_id: connector.id, connector_standard: connector.standard, connector_format: connector.format, connector_power_type: connector.power_type },
      meter_id: this.meter.serial, currency: session.currency, tariffs: tariff ? [tariff] : [],
      charging_periods: session.charging_periods.length ? session.charging_periods : [{ start_date_time: session.start_date_time, dimensions: dims, ...(meta.tariff_id ? { tariff_id: meta.tariff_id } : {}) }],
      total_cost: { excl_vat: round4(costs.total.excl_vat + offset), incl_vat: round4(costs.total.incl_vat + offset) },
      total_energy: meta.wh / 1000, total_time: round4(seconds / 3600), total_parking_time: 0, last_updated: now(),
    };
    if (session.authorization_reference) cdr.authorization_reference = session.authorization_reference;
    if (costs.fixed) cdr.total_fixed_cost = costs.fixed;
    if (costs.energy) cdr.total_energy_cost = costs.energy;
    if (costs.time) cdr.total_time_cost = costs.time;
    if (meta.begin && meta.end) cdr.signed_data = this.meter.signedData(meta.begin, meta.end);
    return this.selfCheck("CDR", O.CDR, cdr);
  }

  // ------------------------------------------------------------------ locations and tariffs

  async setStatus(location, evse, status, correlation) {
    const stamp = now();
    Object.assign(evse, { status, last_updated: stamp });
    location.last_updated = stamp;
    this.platform.touch();
    const p = this.platform;
    return p.toEmsp("PATCH", "locations", `${p.party.country_code}/${p.party.party_id}/${location.id}/${evse.uid}`, { status, last_updated: stamp }, { purpose: `EVSE status ${status}`, correlation });
  }

  /**
   * Re-point a Connector to other Tariffs (``tariffIds``) and tell the eMSP: PATCH {tariff_ids, last_updated} of
   * the Connector, or PUT of the whole Connector ("method"); its EVSE and Location take its last_updated (2.2.1
   * mod_locations: a Connector's update updates its parents').
   */
  async setConnectorTariffs(location, evse, connector, tariffIds, method) {
    const stamp = now();
    Object.assign(connector, { tariff_ids: tariffIds, last_updated: stamp });
    evse.last_updated = location.last_updated = stamp;
    this.platform.touch();
    const p = this.platform;
    const body = method === "PUT" ? this.selfCheck("Connector", O.Connector, connector) : { tariff_ids: tariffIds, last_updated: stamp };
    const path = `${p.party.country_code}/${p.party.party_id}/${location.id}/${evse.uid}/${connector.id}`;
    return p.toEmsp(method, "locations", path, body, { purpose: `Connector tariffs ${method}` });
  }

  /** PUT every Location and Tariff (or only the Location ``locationId``). */
  async pushAll(locationId) {
    const p = this.platform;
    const results = [];
    const locations = locationId ? [p.location(locationId)].filter(Boolean) : p.state.locations;
    for (const l of locations) results.push(await p.toEmsp("PUT", "locations", `${p.party.country_code}/${p.party.party_id}/${l.id}`, l, { purpose: "Location PUT" }));
    if (!locationId) for (const t of p.state.tariffs) results.push(await this.pushTariff(t));
    return results.map((r) => r.ok);
  }

  pushTariff(tariff) {
    const p = this.platform;
    return p.toEmsp("PUT", "tariffs", `${p.party.country_code}/${p.party.party_id}/${tariff.id}`, this.selfCheck("Tariff", O.Tariff, tariff), { purpose: "Tariff PUT" });
  }

  stopTimers() {
    for (const timer of this.platform.timers.values()) clearInterval(timer);
    this.platform.timers.clear();
  }

  /** After a restart: sessions still ACTIVE in the state file keep charging. */
  resume() {
    for (const s of this.platform.state.sessions) if (s.status === "ACTIVE") this.run(s);
  }

  crash(error) {
    this.journal.add({ direction: "self", method: "ERROR", url: "", violations: [`stand-in error: ${error.stack || error}`] });
  }
}

module.exports = { Charging, cdrToken };
