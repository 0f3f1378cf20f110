#!/usr/bin/env node
// Offline `solc` stand-in backed by npm's solc-js (the official compiler built to WebAssembly).
// It answers the subset of the native CLI that py-solc-x and Brownie call:
//   --version                      (answered from a cache: py-solc-x calls it ~8 times per compile)
//   --standard-json [--allow-paths a,b] [--base-path P] [--include-path P]...   (input on stdin)
// Imports resolve against the working directory, the base path and every include path.
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const VERSION_CACHE = path.join(ROOT, "node_modules", ".solc-version");

function loadSolc() {
  return require(path.join(ROOT, "node_modules", "solc"));
}

function longVersion() {
  try {
    const cached = fs.readFileSync(VERSION_CACHE, "utf8").trim();
    if (cached) return cached;
  } catch (_) { /* first call: fill the cache */ }
  const version = loadSolc().version();
  fs.writeFileSync(VERSION_CACHE, version + "\n");
  return version;
}

function parseArgs(argv) {
  const opts = { roots: [process.cwd()], standardJson: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--version") opts.version = true;
    else if (arg === "--standard-json") opts.standardJson = true;
    else if (arg === "--base-path" || arg === "--include-path") opts.roots.push(path.resolve(argv[++i]));
    else if (arg === "--allow-paths") opts.roots.push(...argv[++i].split(",").filter(Boolean).map((p) => path.resolve(p)));
    else if (arg.startsWith("--")) { /* options the wrapper does not need (e.g. --optimize) */ }
  }
  return opts;
}

function findImport(roots) {
  return (importPath) => {
    const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.join(r, importPath));
    for (const file of candidates) {
      if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${longVersion()}\n`);
    return;
  }
  if (!opts.standardJson) {
    process.stderr.write("solc stand-in (solc-js): only --version and --standard-json are supported\n");
    process.exitCode = 2;
    return;
  }
  const input = fs.readFileSync(0, "utf8");
  const output = loadSolc().compile(input, { import: findImport(opts.roots) });
  // Set exitCode instead of calling process.exit(): exit() right after a large write truncates stdout.
  process.stdout.write(output);
  process.exitCode = 0;
}

main();
