// The eMSP platform's state: its party and Tokens, its registration with a CPO platform (as the Sender of the
// credentials handshake: its own token for the CPO, the CPO's token for it, the CPO's endpoints and roles), and
// what the CPO pushed or it pulled (Locations, Tariffs, Sessions, CDRs) and the CommandResults it received.
"use strict";
const { STATUS, OcpiError, send } = require("../ocpi_shared/transport");
const { OcpiPlatform } = require("../ocpi_shared/party");

const STAMP = "2026-01-01T00:00:00Z";
const token = (uid, type, whitelist, extra = {}) => ({ uid, type, contract_id: `NL-EMS-${uid}`, issuer: "EVN Stand-in eMSP", valid: true, whitelist, last_updated: STAMP, ...extra });
const DEFAULT_TOKENS = [token("APP-0001", "APP_USER", "NEVER"), token("04A1B2C3D4", "RFID", "ALLOWED", { visual_number: "EMS-0001" }), token("04A1B2C3D5", "RFID", "ALWAYS"), token("04FFFF0001", "RFID", "NEVER", { valid: false }), token("04A1B2C3D6", "RFID", "ALLOWED_OFFLINE"), token("04A1B2C3D7", "RFID", "NEVER")];

class EmspPlatform extends OcpiPlatform {
  constructor({ party, baseUrl, maxLimit, stateFile, journal }) {
    const own = (t) => ({ country_code: party.country_code, party_id: party.party_id, ...t });
    const initial = { registration: null, tokens: DEFAULT_TOKENS.map(own), rules: {}, authorizations: [], locations: {}, tariffs: {}, sessions: {}, cdrs: {}, commands: {}, counters: { command: 0, authorization: 0 } };
    super({ party, baseUrl, maxLimit, stateFile, journal, role: "EMSP", other: "CPO", name: "EVN Stand-in eMSP" }, initial);
    this.save();
  }

  /** Our token (pending during our own POST, when the CPO already calls back with it) admits everything. */
  authorize(auth) {
    if (auth.error) throw new OcpiError(401, STATUS.CLIENT_ERROR, auth.error);
    const reg = this.state.registration;
    if (reg && [reg.our_token, reg.pending_token].includes(auth.token)) return "CPO";
    throw new OcpiError(401, STATUS.CLIENT_ERROR, "unknown credentials token");
  }

  /** True if a pushed object's URL names the registered CPO (country_code / party_id, case-insensitive). */
  ownedByCpo(countryCode, partyId) {
    const reg = this.state.registration;
    return !!reg && reg.roles.some((r) => r.role === "CPO" && r.country_code.toUpperCase() === String(countryCode).toUpperCase() && r.party_id.toUpperCase() === String(partyId).toUpperCase());
  }

  /** The CPO's endpoint of ``module`` in ``role``, or null. */
  endpoint(module, role) {
    const reg = this.state.registration;
    return (reg && reg.endpoints && reg.endpoints[module] && reg.endpoints[module][role]) || null;
  }

  /** A request to the registered CPO (skipped while this platform is down). */
  async toCpo(method, url, body, { purpose, expect, functional = true } = {}) {
    const reg = this.state.registration;
    const skip = !reg || !reg.their_token ? "not registered" : !url ? "the CPO has no such endpoint" : this.outage ? "platform down" : null;
    if (skip) {
      this.journal.add({ direction: "out", method, url: url || "", purpose, skipped: skip, body });
      return { ok: false, skipped: skip };
    }
    return send(this.journal, method, url, body, { token: reg.their_token, functional, us: this.party, them: this.counterpart, purpose, expect });
  }
}

module.exports = { EmspPlatform };
