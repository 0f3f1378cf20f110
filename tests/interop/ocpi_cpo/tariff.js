// What a session costs under a Tariff (mod_tariffs: per dimension the first TariffElement with a matching
// PriceComponent; step_size rounds the session's total amount up; VAT per component; min_price / max_price).
// Simplification: restrictions are evaluated once, at the session's start (time of day, day of week, dates,
// kWh bounds against 0, power/current/duration are treated as not matching), so a tariff whose element changes
// during a session is priced with the element active at its start. Amounts are rounded to 4 decimals.
"use strict";

const round4 = (x) => Math.round(x * 10000) / 10000;

function localParts(at, timeZone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", weekday: "long", hour12: false })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  return { date: `${parts.year}-${parts.month}-${parts.day}`, time: `${parts.hour === "24" ? "00" : parts.hour}:${parts.minute}`, day: parts.weekday.toUpperCase() };
}

function matches(restrictions, at, timeZone) {
  if (!restrictions) return true;
  const { date, time, day } = localParts(at, timeZone);
  const r = restrictions;
  if (r.start_time && r.end_time) {
    const inside = r.start_time <= r.end_time ? time >= r.start_time && (time < r.end_time || r.end_time === "00:00") : time >= r.start_time || time < r.end_time;
    if (!inside) return false;
  } else if ((r.start_time && time < r.start_time) || (r.end_time && time >= r.end_time)) return false;
  if ((r.start_date && date < r.start_date) || (r.end_date && date >= r.end_date)) return false;
  if (r.day_of_week && r.day_of_week.length && !r.day_of_week.includes(day)) return false;
  if (r.min_kwh !== undefined && r.min_kwh > 0) return false;
  if ([r.min_power, r.min_current, r.min_duration, r.reservation].some((x) => x !== undefined)) return false;
  return true;
}

/** The price component of each dimension active at ``at``: {ENERGY: pc, FLAT: pc, TIME: pc, PARKING_TIME: pc}. */
function activeComponents(tariff, at, timeZone) {
  const active = {};
  for (const element of tariff.elements) {
    if (!matches(element.restrictions, at, timeZone)) continue;
    for (const pc of element.price_components) if (!(pc.type in active)) active[pc.type] = pc;
  }
  return active;
}

/** Cost of ``wh`` energy over ``seconds`` of charging, started at ``start``: Price objects per dimension and total. */
function cost(tariff, { wh, seconds, start, timeZone }) {
  const active = activeComponents(tariff, start, timeZone);
  const steps = (amount, pc) => Math.ceil(amount / pc.step_size) * pc.step_size;
  const price = (excl, pc) => ({ excl_vat: excl, incl_vat: pc.vat === undefined ? excl : excl * (1 + pc.vat / 100) });
  const parts = {
    energy: active.ENERGY ? price((active.ENERGY.price * steps(wh, active.ENERGY)) / 1000, active.ENERGY) : null,
    fixed: active.FLAT ? price(active.FLAT.price, active.FLAT) : null,
    time: active.TIME ? price((active.TIME.price * steps(seconds, active.TIME)) / 3600, active.TIME) : null,
  };
  let total = Object.values(parts).reduce((sum, p) => (p ? { excl_vat: sum.excl_vat + p.excl_vat, incl_vat: sum.incl_vat + p.incl_vat } : sum), { excl_vat: 0, incl_vat: 0 });
  if (tariff.min_price) total = { excl_vat: Math.max(total.excl_vat, tariff.min_price.excl_vat), incl_vat: Math.max(total.incl_vat, tariff.min_price.incl_vat ?? total.incl_vat) };
  if (tariff.max_price) total = { excl_vat: Math.min(total.excl_vat, tariff.max_price.excl_vat), incl_vat: Math.min(total.incl_vat, tariff.max_price.incl_vat ?? total.incl_vat) };
  const r = (p) => p && { excl_vat: round4(p.excl_vat), incl_vat: round4(p.incl_vat) };
  return { total: r(total), energy: r(parts.energy), fixed: r(parts.fixed), time: r(parts.time) };
}

module.exports = { cost, round4 };
