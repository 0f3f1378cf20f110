// What both stand-in platforms are: a party (country_code, party_id) at a base URL, with a registration of the
// other platform (its roles and endpoints), a state persisted to a JSON file, a journal and an outage switch.
"use strict";
const fs = require("fs");

class OcpiPlatform {
  /** ``role`` is ours ("CPO" or "EMSP"), ``other`` the role we expect of the registered platform. */
  constructor({ party, baseUrl, maxLimit, stateFile, journal, role, other, name }, initialState) {
    Object.assign(this, { party, baseUrl, maxLimit, stateFile, journal, role, other, name });
    this.outage = null; // null | "reset" | "503"
    this.saved = stateFile && fs.existsSync(stateFile) ? JSON.parse(fs.readFileSync(stateFile, "utf8")) : null;
    this.state = this.saved || initialState;
  }

  get versionsUrl() {
    return `${this.baseUrl}/ocpi/versions`;
  }
  get detailsUrl() {
    return `${this.baseUrl}/ocpi/2.2.1`;
  }
  get registration() {
    return this.state.registration;
  }
  /** The registered platform's party in the role we expect of it (else its first role), or null. */
  get counterpart() {
    const reg = this.state.registration;
    const role = reg && reg.roles && (reg.roles.find((r) => r.role === this.other) || reg.roles[0]);
    return role ? { country_code: role.country_code, party_id: role.party_id } : null;
  }
  /** Our Credentials object carrying ``token`` (the one the other platform is to use with us). */
  credentials(token) {
    return { token, url: this.versionsUrl, roles: [{ role: this.role, business_details: { name: this.name }, party_id: this.party.party_id, country_code: this.party.country_code }] };
  }
  save() {
    if (!this.stateFile) return;
    const tmp = `${this.stateFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.state));
    fs.renameSync(tmp, this.stateFile);
  }
  nextId(kind, prefix) {
    this.state.counters[kind] += 1;
    return `${prefix}-${String(this.state.counters[kind]).padStart(5, "0")}`;
  }
}

module.exports = { OcpiPlatform };
