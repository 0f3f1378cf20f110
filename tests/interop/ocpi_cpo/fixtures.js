// The CPO's Locations (with EVSEs and Connectors) and Tariffs: a JSON fixture file {"locations": [...],
// "tariffs": [...]} of OCPI 2.2.1 objects, or the defaults below. country_code, party_id and last_updated may be
// left out of a fixture (they are filled in); everything else is validated against the 2.2.1 tables at start.
//
// Default tariffs: the first four are what a chain tariff can express (one element, no restrictions: ENERGY per
// kWh, FLAT session fee, TIME per hour); the others are not (time of day, PARKING_TIME, step_size, several
// elements, a power restriction), for an importer to refuse by name.
"use strict";
const fs = require("fs");
const { O, validate, errorsOnly } = require("../ocpi_shared/spec");

const energy = (price, extra = {}) => ({ type: "ENERGY", price, vat: 19.0, step_size: 1, ...extra });
const flat = (price) => ({ type: "FLAT", price, vat: 19.0, step_size: 1 });
const time = (price, extra = {}) => ({ type: "TIME", price, vat: 19.0, step_size: 1, ...extra });
const tariff = (id, elements, extra = {}) => ({ id, currency: "EUR", elements, ...extra });

const DEFAULT_TARIFFS = [
  tariff("T-ENERGY", [{ price_components: [energy(0.3)] }]),
  tariff("T-SIMPLE", [{ price_components: [energy(0.25), flat(0.5), time(1.2)] }]),
  tariff("T-FLAT", [{ price_components: [flat(2.0)] }]),
  tariff("T-TIME", [{ price_components: [time(2.0)] }]),
  tariff("T-TIME-OF-DAY", [
    { price_components: [energy(0.4)], restrictions: { start_time: "08:00", end_time: "20:00" } },
    { price_components: [energy(0.25)] },
  ]),
  tariff("T-PARKING", [{ price_components: [energy(0.3), { type: "PARKING_TIME", price: 5.0, vat: 19.0, step_size: 300 }] }]),
  tariff("T-STEP", [{ price_components: [energy(0.3, { step_size: 500 })] }]),
  tariff("T-ELEMENTS", [
    { price_components: [energy(0.35)], restrictions: { max_kwh: 20 } },
    { price_components: [energy(0.2)], restrictions: { min_kwh: 20 } },
  ]),
  tariff("T-POWER", [{ price_components: [energy(0.45)], restrictions: { min_power: 50 } }, { price_components: [energy(0.3)] }]),
];

const REMOTE = ["REMOTE_START_STOP_CAPABLE", "RFID_READER"];

function evse(n, tariffId, extra = {}) {
  const { connectorExtra, ...evseExtra } = extra;
  return {
    uid: `EVSE-${n}`,
    evse_id: `DE*EVP*E${String(n).padStart(4, "0")}`,
    status: "AVAILABLE",
    capabilities: REMOTE,
    connectors: [{ id: "1", standard: "IEC_62196_T2", format: "SOCKET", power_type: "AC_3_PHASE", max_voltage: 230, max_amperage: 32, max_electric_power: 22080, tariff_ids: [tariffId], ...connectorExtra }],
    physical_reference: String(n),
    ...evseExtra,
  };
}

function location(id, name, address, latitude, longitude, evses) {
  return { id, publish: true, name, address, city: "Berlin", postal_code: "10115", country: "DEU", coordinates: { latitude, longitude }, parking_type: "ON_STREET", evses, time_zone: "Europe/Berlin" };
}

const DC = { connectorExtra: { standard: "IEC_62196_T2_COMBO", format: "CABLE", power_type: "DC", max_voltage: 920, max_amperage: 400, max_electric_power: 150000 } };

const DEFAULT_LOCATIONS = [
  location("LOC-1", "Invalidenstrasse", "Invalidenstrasse 117", "52.53090", "13.38390", [evse(1, "T-SIMPLE"), evse(2, "T-ENERGY"), evse(3, "T-FLAT")]),
  location("LOC-2", "Hauptbahnhof", "Europaplatz 1", "52.52500", "13.36940", [evse(4, "T-TIME"), evse(5, "T-TIME-OF-DAY"), evse(6, "T-PARKING")]),
  location("LOC-3", "Messe Nord", "Messedamm 22", "52.50700", "13.27980", [
    evse(7, "T-STEP"),
    evse(8, "T-ELEMENTS"),
    evse(9, "T-POWER", DC),
    evse(10, "T-ENERGY", { capabilities: [...REMOTE, "START_SESSION_CONNECTOR_REQUIRED"] }),
    evse(11, "T-ENERGY", { status: "OUTOFORDER" }),
  ]),
];

/** ``count`` more EVSEs (EVSE-B1 ...) at a location LOC-BENCH, T-ENERGY, for many concurrent sessions. */
function bench(count) {
  const evses = Array.from({ length: count }, (_, i) => ({ ...evse(i + 1, "T-ENERGY"), uid: `EVSE-B${i + 1}`, evse_id: `DE*EVP*EB${String(i + 1).padStart(5, "0")}` }));
  return location("LOC-BENCH", "Benchmark Yard", "Benchmarkweg 1", "52.40000", "13.40000", evses);
}

/**
 * Locations and tariffs owned by ``party``, stamped ``stamp`` where last_updated is missing, validated;
 * ``benchEvses`` > 0 adds a location with that many EVSEs.
 */
function load(file, party, stamp, benchEvses = 0) {
  let fixture = { locations: DEFAULT_LOCATIONS, tariffs: DEFAULT_TARIFFS };
  if (file) {
    try {
      fixture = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (exc) {
      throw new Error(`fixture ${file}: ${exc.message}`);
    }
  }
  if (benchEvses > 0) fixture = { ...fixture, locations: [...(fixture.locations || []), bench(benchEvses)] };
  const own = (o) => ({ country_code: party.country_code, party_id: party.party_id, ...structuredClone(o), last_updated: o.last_updated || stamp });
  const locations = (fixture.locations || []).map((l) => {
    const loc = own(l);
    loc.evses = (loc.evses || []).map((e) => ({ ...e, last_updated: e.last_updated || loc.last_updated, connectors: e.connectors.map((c) => ({ ...c, last_updated: c.last_updated || loc.last_updated })) }));
    return loc;
  });
  const tariffs = (fixture.tariffs || []).map(own);
  const problems = [
    ...locations.flatMap((l, i) => errorsOnly(validate(O.Location, l, `locations[${i}]`))),
    ...tariffs.flatMap((t, i) => errorsOnly(validate(O.Tariff, t, `tariffs[${i}]`))),
  ];
  if (problems.length) throw new Error(`fixture is not valid OCPI 2.2.1: ${problems.slice(0, 5).join("; ")}`);
  return { locations, tariffs };
}

module.exports = { load };
