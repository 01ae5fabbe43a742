// Lamina's Node.js runtime client: polls the Lambda Runtime API and calls the handler.
// Runs as /var/runtime/index.mjs under the host's node. Handler `[dir/]file.export[.nested]`,
// CommonJS or ES modules, async or callback handlers; the context object matches AWS's.
// `console` writes as AWS's runtime does: `time\trequest id\tLEVEL\tmessage` in Text format, one
// JSON object per call in JSON format (AWS_LAMBDA_LOG_FORMAT), at AWS_LAMBDA_LOG_LEVEL.
import http from "node:http";
import path from "node:path";
import fs from "node:fs";
import util from "node:util";
import { pathToFileURL } from "node:url";

const JSON_LOGS = (process.env.AWS_LAMBDA_LOG_FORMAT || "").toUpperCase() === "JSON";
const ORDER = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, FATAL: 5 };
const MIN_LEVEL = JSON_LOGS ? ORDER[(process.env.AWS_LAMBDA_LOG_LEVEL || "INFO").toUpperCase()] ?? ORDER.INFO : 0;
let requestId;
for (const [name, level] of [["trace", "TRACE"], ["debug", "DEBUG"], ["info", "INFO"], ["log", "INFO"], ["warn", "WARN"], ["error", "ERROR"]]) {
  const write = console[name === "trace" ? "log" : name].bind(console);
  console[name] = (...args) => {
    if (ORDER[level] < MIN_LEVEL) return;
    const timestamp = new Date().toISOString();
    const message = util.format(...args);
    write(JSON_LOGS
      ? JSON.stringify(requestId ? { timestamp, level, requestId, message } : { timestamp, level, message })
      : `${timestamp}\t${requestId ?? "undefined"}\t${level}\t${message}`);
  };
}

const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const PREFIX = "/2018-06-01/runtime";

function request(method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path: PREFIX + p, agent, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function errorBody(e) {
  const err = e instanceof Error ? e : new Error(String(e));
  return {
    errorType: err.name || "Error",
    errorMessage: err.message,
    trace: (err.stack || "").split("\n"),
  };
}

async function postError(p, e, type) {
  const body = JSON.stringify(e);
  await request("POST", p, body, {
    "Content-Type": "application/json",
    "Lambda-Runtime-Function-Error-Type": type,
    "Content-Length": Buffer.byteLength(body),
  });
}

async function loadHandler() {
  const spec = process.env._HANDLER || "";
  const root = process.env.LAMBDA_TASK_ROOT || "/var/task";
  if (spec.includes("..")) {
    throw Object.assign(new Error(`'${spec}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`), { name: "Runtime.MalformedHandlerName" });
  }
  const dir = path.dirname(spec);
  const base = path.basename(spec);
  const dot = base.indexOf(".");
  if (dot < 0) {
    throw Object.assign(new Error(`Bad handler ${spec}`), { name: "Runtime.MalformedHandlerName" });
  }
  const file = base.slice(0, dot);
  const chain = base.slice(dot + 1).split(".");
  let mod;
  const candidates = [".js", ".mjs", ".cjs"].map((ext) => path.join(root, dir, file + ext));
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) {
    throw Object.assign(new Error(`Cannot find module '${file}'`), { name: "Runtime.ImportModuleError" });
  }
  try {
    mod = await import(pathToFileURL(found).href);
  } catch (e) {
    if (e instanceof SyntaxError) throw Object.assign(e, { name: "Runtime.UserCodeSyntaxError" });
    throw Object.assign(new Error(`Error: ${e.message}`), { name: "Runtime.ImportModuleError", stack: e.stack });
  }
  let h = mod;
  for (const k of chain) {
    h = h?.[k] ?? (k === chain[0] ? mod.default?.[k] : undefined);
  }
  if (typeof h !== "function") {
    throw Object.assign(new Error(`${spec} is undefined or not exported`), { name: "Runtime.HandlerNotFound" });
  }
  return h;
}

function context(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"] || 0);
  const cc = headers["lambda-runtime-client-context"];
  const ci = headers["lambda-runtime-cognito-identity"];
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    clientContext: cc ? JSON.parse(cc) : undefined,
    identity: ci ? JSON.parse(ci) : undefined,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
}

function invoke(handler, event, ctx) {
  return new Promise((resolve, reject) => {
    let done = false;
    const callback = (err, result) => {
      if (done) return;
      done = true;
      err ? reject(err) : resolve(result);
    };
    try {
      const r = handler(event, ctx, callback);
      if (r && typeof r.then === "function") {
        r.then((v) => callback(null, v), (e) => callback(e));
      } else if (handler.length < 3) {
        callback(null, r);
      }
    } catch (e) {
      callback(e);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (e) {
    const body = errorBody(e);
    console.error(`${body.errorType}: ${body.errorMessage}`);
    await postError("/init/error", body, body.errorType);
    process.exit(1);
  }
  for (;;) {
    const next = await request("GET", "/invocation/next");
    const id = next.headers["lambda-runtime-aws-request-id"];
    requestId = id;
    if (next.headers["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = next.headers["lambda-runtime-trace-id"];
    let result;
    try {
      const text = next.body.toString("utf8");
      const event = text ? JSON.parse(text) : undefined;
      result = await invoke(handler, event, context(next.headers));
    } catch (e) {
      const body = errorBody(e);
      console.error(`Invoke Error \t${JSON.stringify(body)}`);
      await postError(`/invocation/${id}/error`, body, "Unhandled");
      continue;
    }
    const out = result === undefined ? "null" : JSON.stringify(result);
    await request("POST", `/invocation/${id}/response`, out, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out) });
  }
}

main();
