// The credentials module's work common to both roles (credentials.asciidoc): reading the other platform's
// versions and 2.2.1 version details to learn its endpoints.
"use strict";
const { O, validate, errorsOnly } = require("./spec");
const { STATUS, OcpiError, send } = require("./transport");

/**
 * GET the other platform's versions at ``versionsUrl`` and its 2.2.1 details, with its credentials ``token``:
 * {version_url, endpoints: {module: {SENDER: url, RECEIVER: url}}}, or OcpiError 3001 / 3002 / 3003.
 */
async function fetchEndpoints(journal, versionsUrl, token) {
  const opts = { token, functional: false, purpose: "credentials handshake" };
  const list = await send(journal, "GET", versionsUrl, undefined, opts);
  if (!list.ok || !Array.isArray(list.data)) throw new OcpiError(200, STATUS.CLIENT_API, `could not GET the other platform's versions at ${versionsUrl}: ${list.error || `HTTP ${list.http}, status ${list.status_code}`}`);
  const problems = list.data.flatMap((v, i) => errorsOnly(validate(O.Version, v, `versions[${i}]`)));
  if (problems.length) throw new OcpiError(200, STATUS.CLIENT_API, `the other platform's versions are not valid: ${problems.join("; ")}`);
  const v221 = list.data.find((v) => v.version === "2.2.1");
  if (!v221) throw new OcpiError(200, STATUS.UNSUPPORTED_VERSION, `the other platform offers no version 2.2.1 (it offers ${list.data.map((v) => v.version).join(", ")})`);
  const det = await send(journal, "GET", v221.url, undefined, { ...opts, expect: O.VersionDetails });
  if (!det.ok) throw new OcpiError(200, STATUS.CLIENT_API, `could not GET the other platform's 2.2.1 details at ${v221.url}: ${det.error || `HTTP ${det.http}, status ${det.status_code}`}`);
  const detailProblems = errorsOnly(validate(O.VersionDetails, det.data));
  if (detailProblems.length) throw new OcpiError(200, STATUS.CLIENT_API, `the other platform's version details are not valid: ${detailProblems.join("; ")}`);
  if (det.data.version !== "2.2.1") throw new OcpiError(200, STATUS.UNSUPPORTED_VERSION, `the details at ${v221.url} are for version ${det.data.version}`);
  const endpoints = {};
  for (const e of det.data.endpoints) (endpoints[e.identifier] ||= {})[e.role] = e.url;
  if (!endpoints.credentials) throw new OcpiError(200, STATUS.NO_MATCHING_ENDPOINTS, "the other platform's 2.2.1 details list no credentials endpoint");
  return { version_url: v221.url, endpoints };
}

module.exports = { fetchEndpoints };
