// The CPO platform's state: its party, the registration of the eMSP (credentials tokens A/B/C and the eMSP's
// endpoints learnt from its version details), Locations, Tariffs, Sessions, CDRs and the Tokens it was given;
// persisted to a JSON state file (when given) so a restarted platform carries on. Also: authorization of
// incoming requests, and every request to the eMSP (with the scenario's outage switches applied).
"use strict";
const { STATUS, OcpiError, send } = require("../ocpi_shared/transport");
const { OcpiPlatform } = require("../ocpi_shared/party");

const DEFAULT_SCENARIO = {
  start: "accept", // accept | refuse (CommandResponse REJECTED) | reject | fail | timeout | occupied (CommandResult) | no_result
  stop: "accept", // accept | refuse | reject | fail | timeout | no_result
  cdr: "push", // push | pull_only | duplicate | none
  signed: "none", // valid | tampered | foreign | none
  kwh_per_second: 0.5, // energy the simulated EV takes, per (real) second
  tick_ms: 1000, // a Session PATCH (kwh, total_cost) every tick_ms
  period_ms: 60000, // a ChargingPeriod (ENERGY, TIME) closed every period_ms, and one at the session's end
  result_delay_ms: 100, // CommandResponse -> CommandResult
  command_timeout: 30, // CommandResponse.timeout, seconds
  authorize: "never", // never (2.2.1 for APP_USER/AD_HOC_USER tokens) | before_start (POST tokens/{uid}/authorize first)
  push_down: false, // true: nothing is pushed to the eMSP (sessions, CDRs, statuses only by pull); nothing is queued
  push_on_register: false, // true: PUT every Location and Tariff to the eMSP after the credentials handshake
  cdr_delay_ms: 0, // the CDR is POSTed this long after the session completed (it is pullable at once)
  cost_offset: 0, // added to the CDR's total_cost (excl. and incl. VAT), for a cost the eMSP must notice
  meter_start_wh: 1000000, // the meter register at the first session's start
  plain_token: false, // true: send "Authorization: Token <token>" unencoded, as pre-2.2 peers do (2.2.1: Base64)
  pending_ms: 0, // > 0: the Session is PUT as PENDING, and PATCHed ACTIVE (new start_date_time) after pending_ms
};

class Platform extends OcpiPlatform {
  constructor({ party, baseUrl, tokenA, maxLimit, stateFile, journal, fixture }) {
    const initial = { token_a: tokenA, registration: null, locations: fixture.locations, tariffs: fixture.tariffs, sessions: [], cdrs: [], tokens: [], meta: {}, counters: { session: 0, cdr: 0, meter_page: 0 }, register_wh: null };
    super({ party, baseUrl, maxLimit, stateFile, journal, role: "CPO", other: "EMSP", name: "EVN Stand-in CPO" }, initial);
    this.scenario = { ...DEFAULT_SCENARIO };
    this.timers = new Map(); // session id -> interval of its charge
    if (this.saved && !this.saved.registration) this.state.token_a = tokenA;
    this.initialTokenA = tokenA;
    this.save();
  }

  /** The registered eMSP's party. */
  get emsp() {
    return this.counterpart;
  }

  /** Save soon (coalescing the many small changes of running sessions). */
  touch() {
    if (!this.stateFile || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, 500);
  }

  /**
   * Who sent this request: "A" (token A, only for versions and credentials) or "C" (the registered eMSP).
   * 401 with the OCPI envelope for a missing, malformed or unknown token (transport_and_format).
   */
  authorize(auth, module) {
    if (auth.error) throw new OcpiError(401, STATUS.CLIENT_ERROR, auth.error);
    const reg = this.state.registration;
    if (reg && auth.token === reg.token_c) return "C";
    if (this.state.token_a && auth.token === this.state.token_a) {
      if (module === "versions" || module === "credentials") return "A";
      throw new OcpiError(401, STATUS.CLIENT_ERROR, `CREDENTIALS_TOKEN_A may only be used for versions and credentials, not ${module}`);
    }
    throw new OcpiError(401, STATUS.CLIENT_ERROR, "unknown credentials token");
  }

  // ------------------------------------------------------------------ lookups

  location(id) {
    return this.state.locations.find((l) => l.id.toUpperCase() === String(id).toUpperCase());
  }
  evse(location, uid) {
    return location && (location.evses || []).find((e) => e.uid.toUpperCase() === String(uid).toUpperCase());
  }
  tariff(id) {
    return this.state.tariffs.find((t) => t.id === id);
  }
  session(id) {
    return this.state.sessions.find((s) => s.id.toUpperCase() === String(id).toUpperCase());
  }

  // ------------------------------------------------------------------ talking to the eMSP

  /** The eMSP's endpoint URL for ``module`` in ``role`` (default RECEIVER), or null. */
  endpoint(module, role = "RECEIVER") {
    const reg = this.state.registration;
    return (reg && reg.endpoints[module] && reg.endpoints[module][role]) || null;
  }

  /**
   * A request to the registered eMSP. ``target`` is a module name (URL = its RECEIVER endpoint + ``suffix``) or
   * {url}. Skipped (and logged as skipped) while the platform is "down", or for pushes while push_down is set.
   */
  async toEmsp(method, target, suffix, body, { purpose, expect, correlation, push = true, functional = true } = {}) {
    const reg = this.state.registration;
    const base = typeof target === "string" ? this.endpoint(target, target === "tokens" ? "SENDER" : "RECEIVER") : target.url;
    const url = base && (typeof target === "string" ? joinUrl(base, suffix) : base);
    const skip = !reg ? "not registered" : !url ? `the eMSP has no ${target} endpoint` : this.outage ? "platform down" : push && this.scenario.push_down ? "push_down" : null;
    if (skip) {
      this.journal.add({ direction: "out", method, url: url || String(target), purpose, skipped: skip, body });
      return { ok: false, skipped: skip };
    }
    // each request we originate gets its own X-Correlation-ID; ``correlation`` (the eMSP's request that started
    // this flow, e.g. its START_SESSION) is kept in the log as ``flow`` to follow a session through it
    return send(this.journal, method, url, body, { token: reg.token_b, plainToken: this.scenario.plain_token, functional, us: this.party, them: this.emsp, purpose, expect, flow: correlation });
  }
}

/** ``base`` + "/" + ``suffix`` with exactly one slash between them (URLs from version details may end in "/"). */
function joinUrl(base, suffix) {
  if (!suffix) return base;
  return `${base.replace(/\/+$/, "")}/${suffix.replace(/^\/+/, "")}`;
}

module.exports = { Platform, DEFAULT_SCENARIO, joinUrl };
