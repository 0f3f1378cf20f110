// The HTTP side shared by the OCPI stand-ins (ocpi_cpo.js, ocpi_emsp.js): options, the OCPI request pipeline
// (module routing, 405, authorization, header checks, the envelope, the journal), the control API, the outage
// switch, and start-up with one JSON "ready" line.
//
// An app is {platform, routes, versions, details, control: {GET, POST}, controlArgs, context}: ``platform`` has
// party, counterpart (the registered party or null), authorize(auth, module), journal, outage and save();
// ``routes`` maps a module to {methods, handler(ctx)}; a handler returns {http, code, message, data, headers}.
"use strict";
const http = require("http");
const { STATUS, OcpiError, envelope, reply, credentialsToken, readBody, parseJson, requestHeaderViolations, uuid } = require("./transport");

/** --name value pairs over ``defaults``; ``required`` names must be given; --port and --max-limit integers. */
function options(argv, defaults, required) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}: options are --name value`);
    opts[argv[i].slice(2)] = argv[i + 1];
  }
  for (const name of required) if (opts[name] === undefined) throw new Error(`--${name} is required`);
  if (!/^\d+$/.test(opts.port) || !/^[1-9]\d*$/.test(opts["max-limit"])) throw new Error("--port and --max-limit must be integers");
  return opts;
}

const CONFIGURATION = ["versions", "details", "credentials"];

async function serveOcpi(app, req, res, url) {
  const { platform } = app;
  let parts; // ["ocpi", "2.2.1", module, ...]
  try {
    parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  const module = parts[1] === "versions" && parts.length === 2 ? "versions" : parts[1] === "2.2.1" ? parts[2] || "details" : null;
  const functional = module && !CONFIGURATION.includes(module);
  const requestId = req.headers["x-request-id"] || uuid();
  const correlation = req.headers["x-correlation-id"] || uuid();
  const headers = { "X-Request-ID": requestId, "X-Correlation-ID": correlation };
  const them = platform.counterpart;
  if (functional && them) Object.assign(headers, { "OCPI-from-country-code": platform.party.country_code, "OCPI-from-party-id": platform.party.party_id, "OCPI-to-country-code": them.country_code, "OCPI-to-party-id": them.party_id });
  const entry = { direction: "in", method: req.method, url: url.pathname + url.search, request_id: requestId, correlation_id: correlation };
  let text = "";
  let violations = [];
  try {
    if (!module) throw new OcpiError(404, STATUS.CLIENT_ERROR, `no OCPI resource at ${url.pathname}`);
    const route = module === "versions" || module === "details" ? { methods: ["GET"], handler: app[module] } : app.routes[module];
    if (!route) throw new OcpiError(404, STATUS.CLIENT_ERROR, `no module ${module} in this platform's 2.2.1 endpoints`);
    if (!route.methods.includes(req.method)) throw new OcpiError(405, STATUS.CLIENT_ERROR, `${req.method} is not allowed on ${module}`);
    text = await readBody(req);
    const who = platform.authorize(credentialsToken(req.headers.authorization), module === "details" ? "versions" : module);
    violations = requestHeaderViolations(req, { functional, hasBody: text.length > 0, us: platform.party, them });
    let body;
    const ctx = { ...app.context, platform, req, url, method: req.method, segments: parts.slice(3), who, correlation, body: () => (body ??= parseJson(text)) };
    const result = await route.handler(ctx);
    if (ctx.warnings) violations.push(...ctx.warnings);
    Object.assign(headers, result.headers || {});
    const answered = reply(res, result.http, envelope(result.code, result.message, result.data), headers);
    if (result.code !== STATUS.SUCCESS) violations.push(`refused (HTTP ${result.http}, status ${result.code}): ${result.message}`);
    platform.journal.add({ ...entry, body: jsonOrText(text), ...answered, response: result.data, violations });
  } catch (exc) {
    const known = exc instanceof OcpiError;
    const error = known ? exc : new OcpiError(500, STATUS.SERVER_ERROR, `stand-in error: ${exc.message}`);
    const answered = reply(res, error.http, envelope(error.code, error.message, error.data), headers);
    violations.push(known ? `refused (HTTP ${error.http}, status ${error.code}): ${error.message}` : `stand-in error: ${exc.stack}`);
    platform.journal.add({ ...entry, body: jsonOrText(text), ...answered, violations });
  }
}

function jsonOrText(text) {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text.slice(0, 2000);
  }
}

/** An error of the control API: HTTP status and message ({"error": message}). */
class ControlError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function serveControl(app, req, res, url) {
  const name = url.pathname.slice("/control/".length);
  const send = (status, data) => {
    const text = JSON.stringify(data);
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  };
  try {
    const table = req.method === "GET" ? app.control.GET : req.method === "POST" ? app.control.POST : {};
    if (!table[name]) throw new ControlError(404, `no control ${req.method} ${name}`);
    let body = {};
    if (req.method === "POST") {
      const text = await readBody(req);
      body = text ? JSON.parse(text) : {};
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ControlError(400, "the body must be a JSON object");
    }
    send(200, await table[name](...app.controlArgs, req.method === "GET" ? url.searchParams : body));
  } catch (exc) {
    send(exc.status || (exc instanceof SyntaxError ? 400 : 500), { error: exc.message });
  }
}

/**
 * Parse the options, listen, build the app with ``setup(opts, baseUrl, port)`` (it returns {app, ready}) and
 * print {"event": "ready", ...ready}. Any start-up error: one line on stderr, exit code 2.
 */
function run(name, defaults, required, setup) {
  let opts;
  try {
    opts = options(process.argv.slice(2), defaults, required);
  } catch (exc) {
    process.stderr.write(`${name}: ${exc.message}\n`);
    process.exit(2);
  }
  let app = null;
  const server = http.createServer((req, res) => {
    let url;
    try {
      url = new URL(req.url, "http://localhost");
    } catch {
      return reply(res, 400, envelope(STATUS.CLIENT_ERROR, "malformed request target"));
    }
    const serve = url.pathname.startsWith("/control/") ? serveControl : url.pathname.startsWith("/ocpi/") ? serveOcpi : null;
    if (!app || !serve) return reply(res, 404, envelope(STATUS.CLIENT_ERROR, `no resource at ${url.pathname}`));
    const { platform } = app;
    if (serve === serveOcpi && platform.outage) {
      platform.journal.add({ direction: "in", method: req.method, url: req.url, refused: `down (${platform.outage})` });
      if (platform.outage === "reset") req.socket.destroy();
      else reply(res, 503, envelope(STATUS.SERVER_ERROR, "platform down for maintenance"));
      return;
    }
    serve(app, req, res, url).catch((exc) => {
      platform.journal.add({ direction: "self", method: "ERROR", url: req.url, violations: [`stand-in error: ${exc.stack}`] });
      if (!res.headersSent) reply(res, 500, envelope(STATUS.SERVER_ERROR, "stand-in error"));
    });
  });
  server.on("clientError", (err, socket) => socket.destroy());
  server.listen(Number(opts.port), opts.host, () => {
    const port = server.address().port;
    const baseUrl = opts["public-url"] ? opts["public-url"].replace(/\/+$/, "") : `http://${opts.host}:${port}`;
    try {
      const started = setup(opts, baseUrl, port);
      app = started.app;
      process.stdout.write(JSON.stringify({ event: "ready", port, ...started.ready }) + "\n");
    } catch (exc) {
      process.stderr.write(`${name}: ${exc.message}\n`);
      process.exit(2);
    }
  });
  process.on("uncaughtException", (exc) => {
    // never die on what a peer sends: record it as the stand-in's own error and go on
    if (app) app.platform.journal.add({ direction: "self", method: "ERROR", url: "", violations: [`stand-in error: ${exc.stack}`] });
    else process.stderr.write(`${name}: ${exc.stack}\n`);
  });
  const stop = () => {
    if (app) app.platform.save();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/** POST /control/down {"mode": "reset"|"503"} and /control/up, and GET /control/log and /control/violations. */
const outage = {
  down: (platform, body) => {
    const mode = body.mode || "reset";
    if (!["reset", "503"].includes(mode)) throw new ControlError(400, "mode must be reset or 503");
    platform.outage = mode;
    return { down: mode };
  },
  up: (platform) => {
    platform.outage = null;
    return { down: null };
  },
  log: (platform, query) => platform.journal.since(Number(query.get("since") || 0)),
  violations: (platform) => platform.journal.violations(),
};

/** A journal printer for --verbose 1: one line per exchange on stderr. */
const verbosePrinter = (opts) => (opts.verbose === "1" ? (line) => process.stderr.write(line + "\n") : null);

module.exports = { run, ControlError, verbosePrinter, outage };
