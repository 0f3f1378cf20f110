// A charge point built on ocpp-rpc (npm), an OCPP-J implementation independent of the Python `ocpp`
// package the Core Client uses. Strict mode validates every message both ways against the OCPP 1.6
// JSON schemas. It boots, reports its connector, accepts a RemoteStartTransaction, starts the
// transaction, sends meter values, then the car unplugs (StopTransaction, EVDisconnected).
// Usage: node ocpp_rpc_cp.js WS_URL IDENTITY PASSWORD   (prints one JSON line per step)
// Card mode: node ocpp_rpc_cp.js WS_URL IDENTITY PASSWORD --card UID [--wait]
//   a driver taps RFID card UID once ready: Authorize, then (if Accepted) StartTransaction with it; each
//   answer is printed with its round trip in ms ("authorized", "started"). --wait: charge only after a
//   line "unplug" on stdin (the test decides when the car leaves). A refused card ends the run.
// --local-list (anywhere after PASSWORD): the charge point keeps a local authorization list (OCPP 1.6 Local
//   Auth List Management) as a real one does: GetLocalListVersion answers its version (0: empty; without
//   the flag -1: not supported, and SendLocalList is NotSupported); a Full update replaces the list, a
//   Differential one with a version not above the held one is a VersionMismatch, an entry without idTagInfo
//   leaves the list. Each update is printed ("local_list": version, updateType, the list as held).
//   --list-state FILE: the list is kept in FILE between runs (as a real charge point keeps it across reconnects).
// Hold mode: node ocpp_rpc_cp.js WS_URL IDENTITY PASSWORD --hold
//   a remote-started charge meters (a reading every 500 ms) until a RemoteStopTransaction of its transaction (taken from
//   its StartTransaction on)
//   (Accepted, printed as "remote_stop"), then stops with reason Remote; otherwise RemoteStopTransaction is Rejected.
"use strict";
const fs = require("fs");
const path = require("path");
const { RPCClient } = require(path.join(__dirname, "..", "..", "node_modules", "ocpp-rpc"));

const localListMode = process.argv.includes("--local-list");
const stateAt = process.argv.indexOf("--list-state");
const listState = stateAt > 0 ? process.argv[stateAt + 1] : null;
const [endpoint, identity, password, mode, cardUid, waitFlag] = process.argv
  .slice(2)
  .filter((a, i, all) => a !== "--local-list" && a !== "--list-state" && all[i - 1] !== "--list-state");
const say = (event, data = {}) => process.stdout.write(JSON.stringify({ event, ...data }) + "\n");
const now = () => new Date().toISOString();
const METER_START = 5000;
let held = null; // --hold: the running transaction, released by its RemoteStopTransaction
const STEP_WH = 700;
const READING_EVERY_MS = 200;
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const cp = new RPCClient({ endpoint, identity, password, protocols: ["ocpp1.6"], strictMode: true, reconnect: false });
  cp.on("strictValidationFailure", (e) => say("strict_validation_failure", { error: String(e.error || e) }));

  cp.handle("RemoteStartTransaction", ({ params }) => {
    say("remote_start", { idTag: params.idTag, connectorId: params.connectorId });
    setImmediate(() => charge(cp, params).catch((e) => { say("error", { error: String(e) }); process.exitCode = 1; cp.close(); }));
    return { status: "Accepted" };
  });
  cp.handle("RemoteStopTransaction", ({ params }) => {
    if (!held || params.transactionId !== held.transactionId) return { status: "Rejected" }; // the car unplugs by itself
    say("remote_stop", { transactionId: params.transactionId });
    setImmediate(held.release);
    return { status: "Accepted" };
  });
  const localList = listState && fs.existsSync(listState)
    ? JSON.parse(fs.readFileSync(listState, "utf8"))
    : { version: 0, entries: {} }; // idTag -> idTagInfo
  cp.handle("GetLocalListVersion", () => ({ listVersion: localListMode ? localList.version : -1 }));
  cp.handle("SendLocalList", ({ params }) => {
    if (!localListMode) return { status: "NotSupported" };
    const full = params.updateType === "Full";
    if (!full && params.listVersion <= localList.version) return { status: "VersionMismatch" };
    const entries = full ? {} : { ...localList.entries };
    for (const { idTag, idTagInfo } of params.localAuthorizationList || []) {
      if (idTagInfo) entries[idTag.toUpperCase()] = idTagInfo;
      else delete entries[idTag.toUpperCase()];
    }
    Object.assign(localList, { version: params.listVersion, entries });
    if (listState) fs.writeFileSync(listState, JSON.stringify(localList));
    say("local_list", { version: params.listVersion, updateType: params.updateType, entries });
    return { status: "Accepted" };
  });
  cp.handle(({ method }) => { say("unexpected_call", { method }); return {}; });

  await cp.connect();
  const boot = await cp.call("BootNotification", { chargePointVendor: "ocpp-rpc", chargePointModel: "InteropCP" });
  say("boot", { status: boot.status });
  await cp.call("Heartbeat", {});
  await cp.call("StatusNotification", { connectorId: 1, errorCode: "NoError", status: "Available", timestamp: now() });
  say("ready");
  if (mode === "--card") await tap(cp, cardUid);
}

function unplugged() {
  return new Promise((resolve) => {
    const lines = require("readline").createInterface({ input: process.stdin });
    lines.on("line", (line) => {
      if (line.trim() === "unplug") { lines.close(); process.stdin.destroy(); resolve(); }
    });
  });
}

async function tap(cp, idTag) {
  const t0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const auth = await cp.call("Authorize", { idTag });
  say("authorized", { status: auth.idTagInfo.status, ms: ms() });
  if (auth.idTagInfo.status !== "Accepted") return cp.close();
  await charge(cp, { idTag, connectorId: 1 }, waitFlag === "--wait" ? unplugged() : null);
}

async function charge(cp, { idTag, connectorId = 1 }, unplug = null) {
  await cp.call("StatusNotification", { connectorId, errorCode: "NoError", status: "Preparing", timestamp: now() });
  const t0 = process.hrtime.bigint();
  const started = await cp.call("StartTransaction", { connectorId, idTag, meterStart: METER_START, timestamp: now() });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  say("started", { transactionId: started.transactionId, status: started.idTagInfo.status, ms });
  const stop = mode === "--hold" ? holdUntilRemoteStop(started.transactionId) : null; // from now on, as a real one
  if (started.idTagInfo.status !== "Accepted" && unplug) return cp.close();
  if (unplug) await unplug;
  await cp.call("StatusNotification", { connectorId, errorCode: "NoError", status: "Charging", timestamp: now() });
  let meter = METER_START;
  for (let i = 0; i < 3; i++) {
    await pause(READING_EVERY_MS); // a meter reads at intervals: 700 Wh within a few ms is beyond any connector
    meter = await meterValue(cp, connectorId, started.transactionId, meter + STEP_WH);
  }
  if (stop) meter = await meterUntilStopped(cp, connectorId, started.transactionId, meter, stop);
  const reason = mode === "--hold" ? "Remote" : "EVDisconnected";
  await cp.call("StopTransaction", { transactionId: started.transactionId, meterStop: meter, timestamp: now(), reason });
  await cp.call("StatusNotification", { connectorId, errorCode: "NoError", status: "Available", timestamp: now() });
  say("stopped", { transactionId: started.transactionId, meterStart: METER_START, meterStop: meter });
  await cp.close();
}

async function meterValue(cp, connectorId, transactionId, meter) {
  await cp.call("MeterValues", {
    connectorId, transactionId,
    meterValue: [{ timestamp: now(), sampledValue: [{ value: String(meter), measurand: "Energy.Active.Import.Register", unit: "Wh" }] }],
  });
  return meter;
}

/** --hold: the transaction is held from its start until its RemoteStopTransaction (a promise of that stop). */
function holdUntilRemoteStop(transactionId) {
  const state = { stopped: false };
  state.done = new Promise((release) => { held = { transactionId, release }; }).then(() => { state.stopped = true; });
  return state;
}

/** --hold: a meter value every 500 ms until the RemoteStopTransaction of the transaction; the last reading. */
async function meterUntilStopped(cp, connectorId, transactionId, meter, stop) {
  while (!stop.stopped) {
    await Promise.race([stop.done, new Promise((r) => setTimeout(r, 500))]);
    if (!stop.stopped) meter = await meterValue(cp, connectorId, transactionId, meter + STEP_WH);
  }
  return meter;
}

const timer = setTimeout(() => { say("error", { error: "timeout" }); process.exit(1); }, 60000);
timer.unref();
main().catch((e) => { say("error", { error: String(e) }); process.exitCode = 1; });
