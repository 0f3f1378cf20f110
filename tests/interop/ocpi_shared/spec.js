// OCPI 2.2.1 types, enums and object tables (types.asciidoc and the mod_*.asciidoc property tables, errata d2),
// as a small schema language and a strict validator. Written from the specification text only.
//
// A schema is a type (a function checking one value) or an object table: {field: [type, cardinality]} where the
// cardinality is "1" (required), "?" (optional), "*" (a list, may be absent or empty) or "+" (a non-empty list).
// validate(table, value) returns a list of problems ("token.uid: longer than 36 characters"), empty when valid;
// fields not in the table are reported too, as "unknown field" (OCPI objects have no extension points).
"use strict";

// ------------------------------------------------------------------ enums

const ENUMS = {
  Role: ["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"],
  ModuleID: ["cdrs", "chargingprofiles", "commands", "credentials", "hubclientinfo", "locations", "sessions", "tariffs", "tokens"],
  InterfaceRole: ["SENDER", "RECEIVER"],
  VersionNumber: ["2.0", "2.1", "2.1.1", "2.2", "2.2.1"],
  TokenType: ["AD_HOC_USER", "APP_USER", "OTHER", "RFID"],
  WhitelistType: ["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"],
  ProfileType: ["CHEAP", "FAST", "GREEN", "REGULAR"],
  AllowedType: ["ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"],
  CommandType: ["CANCEL_RESERVATION", "RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR"],
  CommandResponseType: ["NOT_SUPPORTED", "REJECTED", "ACCEPTED", "UNKNOWN_SESSION"],
  CommandResultType: ["ACCEPTED", "CANCELED_RESERVATION", "EVSE_OCCUPIED", "EVSE_INOPERATIVE", "FAILED", "NOT_SUPPORTED", "REJECTED", "TIMEOUT", "UNKNOWN_RESERVATION"],
  Status: ["AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED", "RESERVED", "UNKNOWN"],
  Capability: ["CHARGING_PROFILE_CAPABLE", "CHARGING_PREFERENCES_CAPABLE", "CHIP_CARD_SUPPORT", "CONTACTLESS_CARD_SUPPORT", "CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE", "PED_TERMINAL", "REMOTE_START_STOP_CAPABLE", "RESERVABLE", "RFID_READER", "START_SESSION_CONNECTOR_REQUIRED", "TOKEN_GROUP_CAPABLE", "UNLOCK_CAPABLE"],
  ConnectorType: ["CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E", "DOMESTIC_F", "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L", "DOMESTIC_M", "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC", "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64", "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C", "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30", "NEMA_10_50", "NEMA_14_30", "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S"],
  ConnectorFormat: ["SOCKET", "CABLE"],
  PowerType: ["AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"],
  ParkingType: ["ALONG_MOTORWAY", "PARKING_GARAGE", "PARKING_LOT", "ON_DRIVEWAY", "ON_STREET", "UNDERGROUND_GARAGE"],
  ParkingRestriction: ["EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"],
  Facility: ["HOTEL", "RESTAURANT", "CAFE", "MALL", "SUPERMARKET", "SPORT", "RECREATION_AREA", "NATURE", "MUSEUM", "BIKE_SHARING", "BUS_STOP", "TAXI_STAND", "TRAM_STOP", "METRO_STATION", "TRAIN_STATION", "AIRPORT", "PARKING_LOT", "CARPOOL_PARKING", "FUEL_STATION", "WIFI"],
  ImageCategory: ["CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"],
  TariffType: ["AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR"],
  TariffDimensionType: ["ENERGY", "FLAT", "PARKING_TIME", "TIME"],
  DayOfWeek: ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
  ReservationRestrictionType: ["RESERVATION", "RESERVATION_EXPIRES"],
  SessionStatus: ["ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"],
  AuthMethod: ["AUTH_REQUEST", "COMMAND", "WHITELIST"],
  CdrDimensionType: ["CURRENT", "ENERGY", "ENERGY_EXPORT", "ENERGY_IMPORT", "MAX_CURRENT", "MIN_CURRENT", "MAX_POWER", "MIN_POWER", "PARKING_TIME", "POWER", "RESERVATION_TIME", "STATE_OF_CHARGE", "TIME"],
  EnergySourceCategory: ["NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER"],
  EnvironmentalImpactCategory: ["NUCLEAR_WASTE", "CARBON_DIOXIDE"],
};

// ------------------------------------------------------------------ primitive types (types.asciidoc)

// DateTime: RFC 3339 in UTC, "Z" optional, fractional seconds allowed, string(25); "+00:00" is not UTC.
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z?$/;
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/;
const NON_PRINTABLE = /[\x00-\x1F\x7F]/; // string: printable UTF-8, no CR/LF/TAB
const HHMM = /^([0-1][0-9]|2[0-3]):[0-5][0-9]$/;
const DATE = /^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$/;
const LATITUDE = /^-?[0-9]{1,2}\.[0-9]{5,7}$/;
const LONGITUDE = /^-?[0-9]{1,3}\.[0-9]{5,7}$/;

function isDateTime(value) {
  if (typeof value !== "string" || value.length > 25) return false;
  const m = DATETIME.exec(value);
  if (!m) return false;
  const [, y, mo, d, h, mi, s] = m.map(Number);
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && s < 60;
}

const parseDateTime = (value) => Date.parse(value.endsWith("Z") ? value : value + "Z");

const T = {
  string: (max) => (v) =>
    typeof v !== "string" ? "is not a string" : v.length > max ? `longer than ${max} characters` : NON_PRINTABLE.test(v) ? "holds non-printable characters" : null,
  cistring: (max) => (v) =>
    typeof v !== "string" ? "is not a string" : v.length > max ? `longer than ${max} characters` : !PRINTABLE_ASCII.test(v) ? "is not printable ASCII (CiString)" : null,
  url: (v) => {
    if (typeof v !== "string") return "is not a string";
    if (v.length > 255) return "URL longer than 255 characters";
    try {
      const u = new URL(v);
      return u.protocol === "http:" || u.protocol === "https:" ? null : "is not an http(s) URL";
    } catch {
      return "is not a URL";
    }
  },
  datetime: (v) => (isDateTime(v) ? null : "is not an OCPI DateTime (RFC 3339 UTC, e.g. 2015-06-29T20:39:09Z)"),
  int: (v) => (Number.isInteger(v) ? null : "is not an integer"),
  number: (v) => (typeof v === "number" && Number.isFinite(v) ? null : "is not a number"),
  boolean: (v) => (typeof v === "boolean" ? null : "is not a boolean"),
  enumOf: (name) => (v) => (ENUMS[name].includes(v) ? null : `is not a ${name} (${JSON.stringify(v)})`),
  pattern: (regex, what) => (v) => (typeof v === "string" && regex.test(v) ? null : `is not ${what}`),
};

// ------------------------------------------------------------------ object tables

const O = {};
O.DisplayText = { language: [T.string(2), "1"], text: [T.string(512), "1"] };
O.Price = { excl_vat: [T.number, "1"], incl_vat: [T.number, "?"] };
O.Image = { url: [T.url, "1"], thumbnail: [T.url, "?"], category: [T.enumOf("ImageCategory"), "1"], type: [T.cistring(4), "1"], width: [T.int, "?"], height: [T.int, "?"] };
O.BusinessDetails = { name: [T.string(100), "1"], website: [T.url, "?"], logo: [O.Image, "?"] };
O.CredentialsRole = { role: [T.enumOf("Role"), "1"], business_details: [O.BusinessDetails, "1"], party_id: [T.cistring(3), "1"], country_code: [T.cistring(2), "1"] };
// Credentials.token: string(64) of printable non-whitespace ASCII (U+0021..U+007E).
O.Credentials = { token: [T.pattern(/^[\x21-\x7E]{1,64}$/, "a token of 1..64 printable non-whitespace ASCII characters"), "1"], url: [T.url, "1"], roles: [O.CredentialsRole, "+"] };
O.Version = { version: [T.enumOf("VersionNumber"), "1"], url: [T.url, "1"] };
O.Endpoint = { identifier: [T.string(255), "1"], role: [T.enumOf("InterfaceRole"), "1"], url: [T.url, "1"] }; // custom ModuleIDs allowed
O.VersionDetails = { version: [T.enumOf("VersionNumber"), "1"], endpoints: [O.Endpoint, "+"] };
O.EnergyContract = { supplier_name: [T.string(64), "1"], contract_id: [T.string(64), "?"] };
O.Token = {
  country_code: [T.cistring(2), "1"], party_id: [T.cistring(3), "1"], uid: [T.cistring(36), "1"], type: [T.enumOf("TokenType"), "1"],
  contract_id: [T.cistring(36), "1"], visual_number: [T.string(64), "?"], issuer: [T.string(64), "1"], group_id: [T.cistring(36), "?"],
  valid: [T.boolean, "1"], whitelist: [T.enumOf("WhitelistType"), "1"], language: [T.string(2), "?"],
  default_profile_type: [T.enumOf("ProfileType"), "?"], energy_contract: [O.EnergyContract, "?"], last_updated: [T.datetime, "1"],
};
O.LocationReferences = { location_id: [T.cistring(36), "1"], evse_uids: [T.cistring(36), "*"] };
O.AuthorizationInfo = { allowed: [T.enumOf("AllowedType"), "1"], token: [O.Token, "1"], location: [O.LocationReferences, "?"], authorization_reference: [T.cistring(36), "?"], info: [O.DisplayText, "?"] };
O.StartSession = { response_url: [T.url, "1"], token: [O.Token, "1"], location_id: [T.cistring(36), "1"], evse_uid: [T.cistring(36), "?"], connector_id: [T.cistring(36), "?"], authorization_reference: [T.cistring(36), "?"] };
O.StopSession = { response_url: [T.url, "1"], session_id: [T.cistring(36), "1"] };
O.ReserveNow = { response_url: [T.url, "1"], token: [O.Token, "1"], expiry_date: [T.datetime, "1"], reservation_id: [T.cistring(36), "1"], location_id: [T.cistring(36), "1"], evse_uid: [T.cistring(36), "?"], authorization_reference: [T.cistring(36), "?"] };
O.CancelReservation = { response_url: [T.url, "1"], reservation_id: [T.cistring(36), "1"] };
O.UnlockConnector = { response_url: [T.url, "1"], location_id: [T.cistring(36), "1"], evse_uid: [T.cistring(36), "1"], connector_id: [T.cistring(36), "1"] };
O.CommandResponse = { result: [T.enumOf("CommandResponseType"), "1"], timeout: [T.int, "1"], message: [O.DisplayText, "*"] };
O.CommandResult = { result: [T.enumOf("CommandResultType"), "1"], message: [O.DisplayText, "*"] };
O.ChargingPreferences = { profile_type: [T.enumOf("ProfileType"), "1"], departure_time: [T.datetime, "?"], energy_need: [T.number, "?"], discharge_allowed: [T.boolean, "?"] };
O.GeoLocation = { latitude: [T.pattern(LATITUDE, "a latitude like 50.770774"), "1"], longitude: [T.pattern(LONGITUDE, "a longitude like -126.104965"), "1"] };
O.AdditionalGeoLocation = { ...O.GeoLocation, name: [O.DisplayText, "?"] };
O.RegularHours = { weekday: [T.int, "1"], period_begin: [T.pattern(HHMM, "HH:MM"), "1"], period_end: [T.pattern(HHMM, "HH:MM"), "1"] };
O.ExceptionalPeriod = { period_begin: [T.datetime, "1"], period_end: [T.datetime, "1"] };
O.Hours = { twentyfourseven: [T.boolean, "1"], regular_hours: [O.RegularHours, "*"], exceptional_openings: [O.ExceptionalPeriod, "*"], exceptional_closings: [O.ExceptionalPeriod, "*"] };
O.EnergySource = { source: [T.enumOf("EnergySourceCategory"), "1"], percentage: [T.number, "1"] };
O.EnvironmentalImpact = { category: [T.enumOf("EnvironmentalImpactCategory"), "1"], amount: [T.number, "1"] };
O.EnergyMix = { is_green_energy: [T.boolean, "1"], energy_sources: [O.EnergySource, "*"], environ_impact: [O.EnvironmentalImpact, "*"], supplier_name: [T.string(64), "?"], energy_product_name: [T.string(64), "?"] };
O.PublishTokenType = { uid: [T.cistring(36), "?"], type: [T.enumOf("TokenType"), "?"], visual_number: [T.string(64), "?"], issuer: [T.string(64), "?"], group_id: [T.cistring(36), "?"] };
O.StatusSchedule = { period_begin: [T.datetime, "1"], period_end: [T.datetime, "?"], status: [T.enumOf("Status"), "1"] };
O.Connector = {
  id: [T.cistring(36), "1"], standard: [T.enumOf("ConnectorType"), "1"], format: [T.enumOf("ConnectorFormat"), "1"], power_type: [T.enumOf("PowerType"), "1"],
  max_voltage: [T.int, "1"], max_amperage: [T.int, "1"], max_electric_power: [T.int, "?"], tariff_ids: [T.cistring(36), "*"],
  terms_and_conditions: [T.url, "?"], last_updated: [T.datetime, "1"],
};
O.EVSE = {
  uid: [T.cistring(36), "1"], evse_id: [T.cistring(48), "?"], status: [T.enumOf("Status"), "1"], status_schedule: [O.StatusSchedule, "*"],
  capabilities: [T.enumOf("Capability"), "*"], connectors: [O.Connector, "+"], floor_level: [T.string(4), "?"], coordinates: [O.GeoLocation, "?"],
  physical_reference: [T.string(16), "?"], directions: [O.DisplayText, "*"], parking_restrictions: [T.enumOf("ParkingRestriction"), "*"],
  images: [O.Image, "*"], last_updated: [T.datetime, "1"],
};
O.Location = {
  country_code: [T.cistring(2), "1"], party_id: [T.cistring(3), "1"], id: [T.cistring(36), "1"], publish: [T.boolean, "1"],
  publish_allowed_to: [O.PublishTokenType, "*"], name: [T.string(255), "?"], address: [T.string(45), "1"], city: [T.string(45), "1"],
  postal_code: [T.string(10), "?"], state: [T.string(20), "?"], country: [T.string(3), "1"], coordinates: [O.GeoLocation, "1"],
  related_locations: [O.AdditionalGeoLocation, "*"], parking_type: [T.enumOf("ParkingType"), "?"], evses: [O.EVSE, "*"],
  directions: [O.DisplayText, "*"], operator: [O.BusinessDetails, "?"], suboperator: [O.BusinessDetails, "?"], owner: [O.BusinessDetails, "?"],
  facilities: [T.enumOf("Facility"), "*"], time_zone: [T.string(255), "1"], opening_times: [O.Hours, "?"], charging_when_closed: [T.boolean, "?"],
  images: [O.Image, "*"], energy_mix: [O.EnergyMix, "?"], last_updated: [T.datetime, "1"],
};
O.PriceComponent = { type: [T.enumOf("TariffDimensionType"), "1"], price: [T.number, "1"], vat: [T.number, "?"], step_size: [T.int, "1"] };
O.TariffRestrictions = {
  start_time: [T.pattern(HHMM, "HH:MM"), "?"], end_time: [T.pattern(HHMM, "HH:MM"), "?"], start_date: [T.pattern(DATE, "YYYY-MM-DD"), "?"],
  end_date: [T.pattern(DATE, "YYYY-MM-DD"), "?"], min_kwh: [T.number, "?"], max_kwh: [T.number, "?"], min_current: [T.number, "?"],
  max_current: [T.number, "?"], min_power: [T.number, "?"], max_power: [T.number, "?"], min_duration: [T.int, "?"], max_duration: [T.int, "?"],
  day_of_week: [T.enumOf("DayOfWeek"), "*"], reservation: [T.enumOf("ReservationRestrictionType"), "?"],
};
O.TariffElement = { price_components: [O.PriceComponent, "+"], restrictions: [O.TariffRestrictions, "?"] };
O.Tariff = {
  country_code: [T.cistring(2), "1"], party_id: [T.cistring(3), "1"], id: [T.cistring(36), "1"], currency: [T.string(3), "1"],
  type: [T.enumOf("TariffType"), "?"], tariff_alt_text: [O.DisplayText, "*"], tariff_alt_url: [T.url, "?"], min_price: [O.Price, "?"],
  max_price: [O.Price, "?"], elements: [O.TariffElement, "+"], start_date_time: [T.datetime, "?"], end_date_time: [T.datetime, "?"],
  energy_mix: [O.EnergyMix, "?"], last_updated: [T.datetime, "1"],
};
O.CdrToken = { country_code: [T.cistring(2), "1"], party_id: [T.cistring(3), "1"], uid: [T.cistring(36), "1"], type: [T.enumOf("TokenType"), "1"], contract_id: [T.cistring(36), "1"] };
O.CdrDimension = { type: [T.enumOf("CdrDimensionType"), "1"], volume: [T.number, "1"] };
O.ChargingPeriod = { start_date_time: [T.datetime, "1"], dimensions: [O.CdrDimension, "+"], tariff_id: [T.cistring(36), "?"] };
O.Session = {
  country_code: [T.cistring(2), "1"], party_id: [T.cistring(3), "1"], id: [T.cistring(36), "1"], start_date_time: [T.datetime, "1"],
  end_date_time: [T.datetime, "?"], kwh: [T.number, "1"], cdr_token: [O.CdrToken, "1"], auth_method: [T.enumOf("AuthMethod"), "1"],
  authorization_reference: [T.cistring(36), "?"], location_id: [T.cistring(36), "1"], evse_uid: [T.cistring(36), "1"],
  connector_id: [T.cistring(36), "1"], meter_id: [T.string(255), "?"], currency: [T.string(3), "1"], charging_periods: [O.ChargingPeriod, "*"],
  total_cost: [O.Price, "?"], status: [T.enumOf("SessionStatus"), "1"], last_updated: [T.datetime, "1"],
};
O.CdrLocation = {
  id: [T.cistring(36), "1"], name: [T.string(255), "?"], address: [T.string(45), "1"], city: [T.string(45), "1"], postal_code: [T.string(10), "?"],
  state: [T.string(20), "?"], country: [T.string(3), "1"], coordinates: [O.GeoLocation, "1"], evse_uid: [T.cistring(36), "1"],
  evse_id: [T.cistring(48), "1"], connector_id: [T.cistring(36), "1"], connector_standard: [T.enumOf("ConnectorType"), "1"],
  connector_format: [T.enumOf("ConnectorFormat"), "1"], connector_power_type: [T.enumOf("PowerType"), "1"],
};
O.SignedValue = { nature: [T.cistring(32), "1"], plain_data: [T.string(512), "1"], signed_data: [T.string(5000), "1"] };
O.SignedData = { encoding_method: [T.cistring(36), "1"], encoding_method_version: [T.int, "?"], public_key: [T.string(512), "?"], signed_values: [O.SignedValue, "+"], url: [T.string(512), "?"] };
O.CDR = {
  country_code: [T.cistring(2), "1"], party_id: [T.cistring(3), "1"], id: [T.cistring(39), "1"], start_date_time: [T.datetime, "1"],
  end_date_time: [T.datetime, "1"], session_id: [T.cistring(36), "?"], cdr_token: [O.CdrToken, "1"], auth_method: [T.enumOf("AuthMethod"), "1"],
  authorization_reference: [T.cistring(36), "?"], cdr_location: [O.CdrLocation, "1"], meter_id: [T.string(255), "?"], currency: [T.string(3), "1"],
  tariffs: [O.Tariff, "*"], charging_periods: [O.ChargingPeriod, "+"], signed_data: [O.SignedData, "?"], total_cost: [O.Price, "1"],
  total_fixed_cost: [O.Price, "?"], total_energy: [T.number, "1"], total_energy_cost: [O.Price, "?"], total_time: [T.number, "1"],
  total_time_cost: [O.Price, "?"], total_parking_time: [T.number, "?"], total_parking_cost: [O.Price, "?"], total_reservation_cost: [O.Price, "?"],
  remark: [T.string(255), "?"], invoice_reference_id: [T.cistring(39), "?"], credit: [T.boolean, "?"], credit_reference_id: [T.cistring(39), "?"],
  home_charging_compensation: [T.boolean, "?"], last_updated: [T.datetime, "1"],
};
// The response envelope (transport_and_format "Response format").
O.Envelope = { data: [() => null, "?"], status_code: [T.int, "1"], status_message: [T.string(1 << 16), "?"], timestamp: [T.datetime, "1"] };

// ------------------------------------------------------------------ validation

const isTable = (schema) => typeof schema === "object" && schema !== null;

function check(schema, value, path, problems) {
  if (isTable(schema)) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      problems.push(`${path || "body"}: is not an object`);
      return;
    }
    for (const [field, [type, card]] of Object.entries(schema)) {
      const at = path ? `${path}.${field}` : field;
      const present = value[field] !== undefined && value[field] !== null;
      if (!present) {
        if (card === "1" || card === "+") problems.push(`${at}: required field missing`);
        continue;
      }
      if (card === "*" || card === "+") {
        if (!Array.isArray(value[field])) problems.push(`${at}: is not a list`);
        else if (card === "+" && value[field].length === 0) problems.push(`${at}: must hold at least one entry`);
        else value[field].forEach((item, i) => check(type, item, `${at}[${i}]`, problems));
      } else {
        check(type, value[field], at, problems);
      }
    }
    for (const field of Object.keys(value)) if (!(field in schema)) problems.push(`${path ? path + "." : ""}${field}: unknown field`);
    return;
  }
  const problem = schema(value);
  if (problem) problems.push(`${path || "value"}: ${problem}`);
}

/** The problems of ``value`` against ``schema`` (an object table or a type); [] when it is valid. */
function validate(schema, value, path = "") {
  const problems = [];
  check(schema, value, path, problems);
  return problems;
}

/** A PATCH body: ``last_updated`` is required, every other field present is checked as in ``schema``. */
function validatePatch(schema, value) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return ["body: is not an object"];
  const problems = [];
  if (value.last_updated === undefined) problems.push("last_updated: required in every PATCH");
  const partial = Object.fromEntries(Object.keys(value).filter((k) => k in schema).map((k) => [k, [schema[k][0], schema[k][1] === "+" ? "+" : schema[k][1] === "*" ? "*" : "?"]]));
  for (const k of Object.keys(value)) if (!(k in schema)) problems.push(`${k}: unknown field`);
  check(partial, value, "", problems);
  return problems;
}

/** Problems that are errors, not only unknown fields (those are reported but tolerated). */
const errorsOnly = (problems) => problems.filter((p) => !p.endsWith(": unknown field"));

module.exports = { ENUMS, T, O, validate, validatePatch, errorsOnly, isDateTime, parseDateTime };
