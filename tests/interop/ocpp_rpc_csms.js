// A CSMS stand-in built on ocpp-rpc's RPCServer (npm), an OCPP-J implementation independent of the
// Python `ocpp` package. Strict mode validates every message both ways against the OCPP 1.6 schemas.
// It plays the CPO's existing CSMS in front of which the Core Client runs in proxy mode.
//
// Usage: node ocpp_rpc_csms.js PORT LOG.jsonl [PASSWORDS_JSON]
//   PASSWORDS_JSON: {"CP-1": "secret", ...}; a charge point not listed is refused (401). Without it, all are accepted.
// - Every message it receives is appended, in order, to LOG.jsonl: {"kind":"call","identity","method","params",
//   "messageId"} for CALLs, {"kind":"result"|"error",...} for answers to its own CALLs, and {"kind":"connect"|
//   "disconnect","identity"} for connections, {"kind":"bad_message"} for a frame it cannot place (e.g. an answer
//   to a CALL it never sent), {"kind":"invalid"} for a frame strict mode refused. A restart appends to the same file.
// - Its own RFID cards are the idTags starting with "CARD"; any other idTag (an EV Network tag) is Invalid to it.
// - Transaction ids are its own: 1001, 1002, ... continued across restarts (it counts StartTransactions in LOG).
// - Commands, one JSON line each on stdin: {"cmd":"call","identity","method","params"} sends a CALL to a charge
//   point (the answer is printed and logged); {"cmd":"delay","ms":N} answers every later CALL N ms late.
// - Prints {"event":"listening"} when ready, one JSON line per command's outcome.
"use strict";
const fs = require("fs");
const path = require("path");
const readline = require("readline");
const { RPCServer } = require(path.join(__dirname, "..", "..", "node_modules", "ocpp-rpc"));

const [port, logPath, passwordsJson] = process.argv.slice(2);
const passwords = passwordsJson ? JSON.parse(passwordsJson) : null;
const say = (event, data = {}) => process.stdout.write(JSON.stringify({ event, ...data }) + "\n");
const record = (entry) => fs.appendFileSync(logPath, JSON.stringify(entry) + "\n");
const now = () => new Date().toISOString();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const clients = new Map();
let delayMs = 0;

function startedBefore() {
  if (!fs.existsSync(logPath)) return 0;
  return fs.readFileSync(logPath, "utf8").split("\n").filter((line) => line.includes('"method":"StartTransaction"')).length;
}
let nextTransactionId = 1001 + startedBefore();

const idTagInfo = (idTag) => ({ status: idTag && idTag.startsWith("CARD") ? "Accepted" : "Invalid" });
const answers = {
  BootNotification: () => ({ status: "Accepted", currentTime: now(), interval: 300 }),
  Heartbeat: () => ({ currentTime: now() }),
  Authorize: ({ idTag }) => ({ idTagInfo: idTagInfo(idTag) }),
  StartTransaction: ({ idTag }) => ({ transactionId: nextTransactionId++, idTagInfo: idTagInfo(idTag) }),
  StopTransaction: ({ idTag }) => (idTag ? { idTagInfo: idTagInfo(idTag) } : {}),
  DataTransfer: () => ({ status: "Accepted" }),
};

const server = new RPCServer({ protocols: ["ocpp1.6"], strictMode: true, pingIntervalMs: 0 });
server.auth((accept, reject, handshake) => {
  const expected = passwords && passwords[handshake.identity];
  if (passwords && (expected === undefined || !handshake.password || handshake.password.toString() !== expected)) {
    reject(401, "unknown charge point or wrong password");
    return;
  }
  accept();
});

server.on("client", (client) => {
  const identity = client.identity;
  clients.set(identity, client);
  record({ kind: "connect", identity });
  client.on("close", () => {
    if (clients.get(identity) === client) clients.delete(identity);
    record({ kind: "disconnect", identity });
  });
  client.on("badMessage", (e) => record({ kind: "bad_message", identity, message: String(e.buffer || e) }));
  client.on("strictValidationFailure", (e) => record({ kind: "invalid", identity, method: e.method, error: String(e.error || e) }));
  client.handle(async ({ method, params, messageId }) => {
    record({ kind: "call", identity, method, params, messageId });
    if (delayMs) await sleep(delayMs);
    const answer = answers[method];
    return answer ? answer(params) : {};
  });
});

async function command(line) {
  const cmd = JSON.parse(line);
  if (cmd.cmd === "delay") {
    delayMs = cmd.ms;
    say("delay", { ms: delayMs });
    return;
  }
  const client = clients.get(cmd.identity);
  if (!client) return say("call_failed", { identity: cmd.identity, error: "not connected" });
  try {
    const result = await client.call(cmd.method, cmd.params);
    record({ kind: "result", identity: cmd.identity, method: cmd.method, result });
    say("result", { identity: cmd.identity, method: cmd.method, result });
  } catch (e) {
    record({ kind: "error", identity: cmd.identity, method: cmd.method, error: String(e.rpcErrorCode || e) });
    say("call_failed", { identity: cmd.identity, method: cmd.method, error: String(e.rpcErrorCode || e) });
  }
}

server.listen(Number(port), "127.0.0.1").then(() => {
  say("listening", { port: Number(port) });
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (line.trim()) command(line).catch((e) => say("error", { error: String(e) }));
  });
});
