// A charge point built on ocpp-rpc (npm), an OCPP-J implementation independent of the Python `ocpp`
// package the Core Client uses. Strict mode validates every message both ways against the OCPP 1.6
// JSON schemas. It boots, reports its connector, accepts a RemoteStartTransaction, starts the
// transaction, sends meter values, then the car unplugs (StopTransaction, EVDisconnected).
// Usage: node ocpp_rpc_cp.js WS_URL IDENTITY PASSWORD   (prints one JSON line per step)
"use strict";
const path = require("path");
const { RPCClient } = require(path.join(__dirname, "..", "..", "node_modules", "ocpp-rpc"));

const [endpoint, identity, password] = process.argv.slice(2);
const say = (event, data = {}) => process.stdout.write(JSON.stringify({ event, ...data }) + "\n");
const now = () => new Date().toISOString();
const METER_START = 5000;
const STEP_WH = 700;

async function main() {
  const cp = new RPCClient({ endpoint, identity, password, protocols: ["ocpp1.6"], strictMode: true, reconnect: false });
  cp.on("strictValidationFailure", (e) => say("strict_validation_failure", { error: String(e.error || e) }));

  cp.handle("RemoteStartTransaction", ({ params }) => {
    say("remote_start", { idTag: params.idTag, connectorId: params.connectorId });
    setImmediate(() => charge(cp, params).catch((e) => { say("error", { error: String(e) }); process.exitCode = 1; cp.close(); }));
    return { status: "Accepted" };
  });
  cp.handle("RemoteStopTransaction", () => ({ status: "Rejected" })); // the car will unplug by itself
  cp.handle(({ method }) => { say("unexpected_call", { method }); return {}; });

  await cp.connect();
  const boot = await cp.call("BootNotification", { chargePointVendor: "ocpp-rpc", chargePointModel: "InteropCP" });
  say("boot", { status: boot.status });
  await cp.call("Heartbeat", {});
  await cp.call("StatusNotification", { connectorId: 1, errorCode: "NoError", status: "Available", timestamp: now() });
  say("ready");
}

async function charge(cp, { idTag, connectorId = 1 }) {
  await cp.call("StatusNotification", { connectorId, errorCode: "NoError", status: "Preparing", timestamp: now() });
  const started = await cp.call("StartTransaction", { connectorId, idTag, meterStart: METER_START, timestamp: now() });
  say("started", { transactionId: started.transactionId, status: started.idTagInfo.status });
  await cp.call("StatusNotification", { connectorId, errorCode: "NoError", status: "Charging", timestamp: now() });
  let meter = METER_START;
  for (let i = 0; i < 3; i++) {
    meter += STEP_WH;
    await cp.call("MeterValues", {
      connectorId, transactionId: started.transactionId,
      meterValue: [{ timestamp: now(), sampledValue: [{ value: String(meter), measurand: "Energy.Active.Import.Register", unit: "Wh" }] }],
    });
  }
  await cp.call("StopTransaction", { transactionId: started.transactionId, meterStop: meter, timestamp: now(), reason: "EVDisconnected" });
  await cp.call("StatusNotification", { connectorId, errorCode: "NoError", status: "Available", timestamp: now() });
  say("stopped", { transactionId: started.transactionId, meterStart: METER_START, meterStop: meter });
  await cp.close();
}

const timer = setTimeout(() => { say("error", { error: "timeout" }); process.exit(1); }, 60000);
timer.unref();
main().catch((e) => { say("error", { error: String(e) }); process.exitCode = 1; });
