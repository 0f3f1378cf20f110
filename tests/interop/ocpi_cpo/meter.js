// The CSMS's calibration-law meter: OCMF (S.A.F.E. Open Charge Metering Format) records of the Start and End
// register values, signed with a P-256 key (ECDSA-secp256r1-SHA256, DER signature in hex), carried in the CDR's
// SignedData (mod_cdrs: encoding_method "OCMF", public_key base64, signed_values with nature "Start"/"End").
// Each SignedValue: plain_data = the OCMF payload JSON (the signed bytes), signed_data = base64 of the whole
// record "OCMF|<payload>|<signature JSON>". The meter signs the token uid the session was authorized with as ID.
//
// The key is derived from a seed (deterministic across restarts). Modes: "valid"; "tampered" (End value raised
// by 1 kWh after signing); "foreign" (signed with another key than the published one); "none" (no signed data).
"use strict";
const crypto = require("crypto");

const ORDER = BigInt("0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
const b64url = (buf) => buf.toString("base64url");

function keyFromSeed(seed) {
  const scalar = (BigInt("0x" + crypto.createHash("sha256").update(seed).digest("hex")) % (ORDER - 1n)) + 1n;
  const d = Buffer.from(scalar.toString(16).padStart(64, "0"), "hex");
  const ecdh = crypto.createECDH("prime256v1");
  ecdh.setPrivateKey(d);
  const point = ecdh.getPublicKey(); // 04 || x || y
  const jwk = { kty: "EC", crv: "P-256", d: b64url(d), x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)) };
  return { privateKey: crypto.createPrivateKey({ key: jwk, format: "jwk" }), point };
}

/** OCMF time: 2018-07-24T13:22:04,000+0000 S (milliseconds after a comma, S = synchronised clock). */
const ocmfTime = (date) => date.toISOString().replace(/\.(\d{3})Z$/, ",$1+0000 S");

class Meter {
  /** ``counters.meter_page`` is the pagination counter (PG), kept in the platform's persisted state. */
  constructor(seed, serial, counters) {
    const { privateKey, point } = keyFromSeed(`evn-ocpi-cpo-meter:${seed}`);
    this.key = privateKey;
    this.foreignKey = keyFromSeed(`evn-ocpi-cpo-foreign:${seed}`).privateKey;
    this.serial = serial;
    this.counters = counters;
    this.point = point;
    this.publicDer = crypto.createPublicKey(privateKey).export({ type: "spki", format: "der" });
  }

  /** The published key: DER SubjectPublicKeyInfo (hex and base64) and the 65-byte uncompressed point (hex). */
  get publicKey() {
    return { der_hex: this.publicDer.toString("hex").toUpperCase(), base64: this.publicDer.toString("base64"), uncompressed_hex: this.point.toString("hex") };
  }

  /** One signed OCMF record of a register reading: {payload, record}. ``reason`` "B" (Begin) or "E" (End). */
  record(reason, registerWh, idTag, gateway, at, mode) {
    this.counters.meter_page += 1;
    const reading = { TM: ocmfTime(at), TX: reason, RV: registerWh / 1000, RI: "1-b:1.8.0", RU: "kWh", ST: "G" };
    const payload = { FV: "1.0", GI: "EVN-OCPI-CPO", GS: gateway, PG: `T${this.counters.meter_page}`, MV: "EVN", MS: this.serial, IS: true, IT: "CENTRAL", ID: idTag, RD: [reading] };
    let text = JSON.stringify(payload);
    const signer = mode === "foreign" ? this.foreignKey : this.key;
    const signature = crypto.sign("sha256", Buffer.from(text), { key: signer, dsaEncoding: "der" });
    if (mode === "tampered" && reason === "E") {
      reading.RV = (registerWh + 1000) / 1000;
      text = JSON.stringify(payload);
    }
    const record = `OCMF|${text}|${JSON.stringify({ SA: "ECDSA-secp256r1-SHA256", SD: signature.toString("hex").toUpperCase() })}`;
    return { payload: text, record };
  }

  /** The CDR's SignedData for a session's Begin and End records (made when they were read). */
  signedData(begin, end) {
    const value = (nature, r) => ({ nature, plain_data: r.payload, signed_data: Buffer.from(r.record).toString("base64") });
    return { encoding_method: "OCMF", encoding_method_version: 1, public_key: this.publicKey.base64, signed_values: [value("Start", begin), value("End", end)] };
  }
}

module.exports = { Meter };
