// Lamina's Node.js runtime client: polls the Lambda Runtime API and calls the handler.
// Runs as /var/runtime/index.cjs under the host's node (`.cjs`: CommonJS whatever a function's
// NODE_OPTIONS or package.json say about `.js`). Handler `[dir/]file.export[.nested]`,
// CommonJS or ES modules, async or callback handlers; the context object matches AWS's.
// `console` writes as AWS's runtime does: `time\trequest id\tLEVEL\tmessage` in Text format, one
// JSON object per call in JSON format (AWS_LAMBDA_LOG_FORMAT), at AWS_LAMBDA_LOG_LEVEL.
// The client itself is CommonJS, and so is the loading of a CommonJS handler (`require`): node
// starts its ES module loader only for a handler that is an ES module, which saves a CommonJS
// function's cold start the loader's own start.
// Response streaming as AWS's runtime offers it: the global `awslambda` (`streamifyResponse`,
// `HttpResponseStream`), a streaming handler called `handler(event, responseStream, context)`,
// and its bytes posted to the Runtime API as they are written (a chunked `/response`).
"use strict";
const net = require("node:net");
const path = require("node:path");
const fs = require("node:fs");
const util = require("node:util");
const { pathToFileURL } = require("node:url");

// Started ahead, before the sandbox knew its function (`_LAMINA_LAUNCH_FD`): wait for the
// function's working directory and variables, which arrive once its root is complete. A sandbox
// let go unlaunched closes the pipe: nothing to do.
if (process.env._LAMINA_LAUNCH_FD !== undefined) {
  const fd = Number(process.env._LAMINA_LAUNCH_FD);
  const text = fs.readFileSync(fd, "utf8");
  fs.closeSync(fd);
  if (!text) process.exit(0);
  const launch = JSON.parse(text);
  for (const name of Object.keys(process.env)) delete process.env[name];
  for (const [name, value] of launch.env) process.env[name] = value;
  process.chdir(launch.cwd);
}

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

const API = process.env.AWS_LAMBDA_RUNTIME_API;
const [host, port] = API.split(":");
const PREFIX = "/2018-06-01/runtime";
const EMPTY = Buffer.alloc(0);

// One keep-alive HTTP/1.1 connection to the Runtime API. Written here because node's `http`
// costs more at start than the rest of this client; the Runtime API's answers are small and
// regular (a status line, headers, a body of known length or chunked).
class Conn {
  constructor() {
    this.sock = null;
    this.chunks = [];
    this.size = 0;
    this.failure = null;
    this.wake = null;
    // Whether any of the answer to the request in flight has arrived.
    this.received = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port: Number(port) });
      sock.setNoDelay(true);
      this.sock = sock;
      this.chunks = [];
      this.size = 0;
      this.failure = null;
      const gone = (e) => {
        if (this.sock !== sock) return;
        this.failure ??= e || new Error("the Runtime API closed the connection");
        this.poke();
      };
      sock.once("connect", () => {
        sock.off("error", reject);
        resolve();
      });
      sock.once("error", reject);
      sock.on("error", gone);
      sock.on("end", () => gone());
      sock.on("close", () => gone());
      sock.on("data", (d) => {
        this.received = true;
        this.chunks.push(d);
        this.size += d.length;
        this.poke();
      });
    });
  }

  close() {
    if (this.sock) this.sock.destroy();
    this.sock = null;
    this.chunks = [];
    this.size = 0;
  }

  poke() {
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }

  // Waits until `ready()` holds, or fails with the connection.
  async until(ready) {
    for (;;) {
      if (ready()) return;
      if (this.failure) throw this.failure;
      await new Promise((resolve) => (this.wake = resolve));
    }
  }

  flat() {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0] || EMPTY;
  }

  take(n) {
    const all = this.flat();
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.size = rest.length;
    return all.subarray(0, n);
  }

  async line() {
    let end = -1;
    await this.until(() => {
      end = this.flat().indexOf(10);
      if (end < 0 && this.size > 65536) throw new Error("a header line longer than 64 KiB");
      return end >= 0;
    });
    return this.take(end + 1).toString("latin1");
  }

  async read(n) {
    await this.until(() => this.size >= n);
    return this.take(n);
  }

  async response() {
    if (!(await this.line()).startsWith("HTTP/1.")) throw new Error("not an HTTP/1.1 response");
    const headers = {};
    for (let l; (l = await this.line()) !== "\r\n" && l !== "\n"; ) {
      const colon = l.indexOf(":");
      headers[l.slice(0, colon).trim().toLowerCase()] = l.slice(colon + 1).trim();
    }
    let body;
    if ((headers["transfer-encoding"] || "").toLowerCase() === "chunked") {
      const parts = [];
      for (;;) {
        const size = parseInt((await this.line()).split(";")[0], 16);
        if (Number.isNaN(size)) throw new Error("a malformed chunk size");
        if (size === 0) break;
        parts.push(await this.read(size));
        await this.line();
      }
      for (let l; (l = await this.line()) !== "\r\n" && l !== "\n"; );
      body = Buffer.concat(parts);
    } else {
      body = await this.read(Number(headers["content-length"] || 0));
    }
    if ((headers.connection || "").toLowerCase() === "close") this.close();
    return { headers, body };
  }
}

const conn = new Conn();

// Sends one request; resolves with the response's headers (names in lower case) and body. Only
// a kept-alive connection that fails before any of its answer arrives (the server closed it while
// it sat idle through a long invocation) is made again, once: a request whose answer had begun
// to arrive (an event half read) is never sent twice.
async function request(method, p, body, headers = {}) {
  const payload = body === undefined ? EMPTY : Buffer.from(body);
  let head = `${method} ${PREFIX}${p} HTTP/1.1\r\nHost: ${API}\r\nContent-Length: ${payload.length}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  const message = Buffer.concat([Buffer.from(head + "\r\n", "latin1"), payload]);
  for (let attempt = 0; ; attempt++) {
    const reused = conn.sock !== null;
    try {
      if (!reused) await conn.connect();
      conn.received = false;
      conn.sock.write(message);
      return await conn.response();
    } catch (e) {
      const stale = reused && !conn.received;
      conn.close();
      if (attempt || !stale) throw e;
    }
  }
}

// An error's JSON for the trailers, which the Runtime API takes up to 16 KiB of: the trace, then
// the message, cut so that the base64 stays within 8 KiB.
function trailerJson(body) {
  let json = JSON.stringify(body);
  if (json.length <= 6000) return json;
  json = JSON.stringify({ errorType: body.errorType, errorMessage: body.errorMessage });
  if (json.length <= 6000) return json;
  return JSON.stringify({ errorType: String(body.errorType).slice(0, 256), errorMessage: String(body.errorMessage).slice(0, 4000) });
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
    mod = await load(found);
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

// As node decides, and AWS's runtime: `.mjs` is an ES module, `.cjs` CommonJS, and `.js` an ES
// module when the nearest package.json says `"type": "module"`. A `.js` that `require` refuses
// as an ES module anyway is imported.
async function load(file) {
  if (file.endsWith(".mjs") || (file.endsWith(".js") && typeModule(path.dirname(file)))) {
    return import(pathToFileURL(file).href);
  }
  try {
    return require(file);
  } catch (e) {
    // An ES module `require` refuses (older nodes), or one with top-level await (newer nodes,
    // which load other ES modules through `require`).
    if (e && (e.code === "ERR_REQUIRE_ESM" || e.code === "ERR_REQUIRE_ASYNC_MODULE")) {
      return import(pathToFileURL(file).href);
    }
    throw e;
  }
}

// Whether the nearest package.json above `dir` (not past a node_modules folder) declares an ES
// module package.
function typeModule(dir) {
  for (;;) {
    if (path.basename(dir) === "node_modules") return false;
    const pj = path.join(dir, "package.json");
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, "utf8"))?.type === "module";
      } catch {
        return false;
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return false;
    dir = up;
  }
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

// Response streaming. `awslambda.streamifyResponse(handler, options)` marks a handler as AWS's
// runtime does (the symbols below, which code may also set itself); such a handler writes its
// response to a Writable instead of returning it. The global is left out, as AWS's runtime
// does, when AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA is 1 or true.
const STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const HIGH_WATER_MARK = Symbol.for("aws.lambda.runtime.handler.streaming.highWaterMark");
const HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response";
const CRLF = Buffer.from("\r\n", "latin1");

// The content type a function URL reads its status, headers and cookies from: a JSON prelude
// and 8 NUL bytes, then the body. The prelude goes out just before the stream's first bytes
// (or at its end, for an empty body), so a handler may set it before it knows its body.
class HttpResponseStream {
  static from(stream, prelude) {
    stream.setContentType(HTTP_INTEGRATION);
    // JSON escapes any NUL in the prelude: the first NUL is the delimiter's.
    const json = JSON.stringify(prelude ?? {});
    stream._onBeforeFirstWrite = (write) => {
      write(json);
      write(new Uint8Array(8));
    };
    return stream;
  }
}

const NO_GLOBAL = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
if (NO_GLOBAL !== "1" && NO_GLOBAL !== "true") {
  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[STREAMING] = "response";
      if (typeof options?.highWaterMark === "number") handler[HIGH_WATER_MARK] = parseInt(options.highWaterMark);
      return handler;
    },
    HttpResponseStream,
  };
}

// Whether `handler` streams its response. Any mark but "response" is refused at init, as AWS's
// runtime refuses it.
function streams(handler) {
  const mark = handler[STREAMING];
  if (mark === undefined || mark === null || mark === false) return false;
  if (mark === "response") return true;
  throw Object.assign(new Error("Only response streaming is supported."), { name: "Runtime.MalformedStreamingHandler" });
}

// One streamed `/response`: a chunked POST on the shared connection. Its head goes out with the
// first bytes, so that the content type may change until then, and its last chunk carries the
// trailers set by then (a handler's error). Its steps run one after another; after one fails,
// the rest fail with it.
class StreamPost {
  constructor(id) {
    this.id = id;
    this.contentType = "application/octet-stream";
    this.trailers = null;
    // Whether bytes or the end have been handed over.
    this.started = false;
    // Whether the head has gone out.
    this.open = false;
    // The end, once asked for: its writing, then the Runtime API's answer.
    this.ended = null;
    this.answer = null;
    this.failure = null;
    this.queue = Promise.resolve();
  }

  run(step) {
    const p = this.queue.then(() => {
      if (this.failure) throw this.failure;
      return step();
    });
    this.queue = p.then(
      () => {},
      (e) => {
        this.failure ??= e;
      },
    );
    return p;
  }

  // Sends `data` (a Buffer) as one chunk. An empty chunk would end the body, so none is sent.
  send(data) {
    if (data.length === 0) return Promise.resolve();
    this.started = true;
    return this.run(() => this.put([Buffer.from(`${data.length.toString(16)}\r\n`, "latin1"), data, CRLF]));
  }

  // Ends the body, with the trailers set by now; once only, later calls get the same promise.
  end() {
    if (!this.ended) {
      this.started = true;
      let last = "0\r\n";
      for (const [k, v] of Object.entries(this.trailers || {})) last += `${k}: ${v}\r\n`;
      this.ended = this.run(() => this.put([Buffer.from(last + "\r\n", "latin1")]));
      this.answer = this.ended.then(() => conn.response());
      // Whoever waits on the answer sees its failure; none is left unhandled meanwhile.
      this.answer.catch(() => {});
    }
    return this.ended;
  }

  async put(parts) {
    if (!this.open) {
      this.open = true;
      // A connection the server closed while the handler ran is made again: nothing of this
      // request has gone out yet.
      if (conn.sock === null || conn.failure) {
        conn.close();
        await conn.connect();
      }
      conn.received = false;
      const head =
        `POST ${PREFIX}/invocation/${this.id}/response HTTP/1.1\r\nHost: ${API}\r\n` +
        "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n" +
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n" +
        `Content-Type: ${this.contentType}\r\n\r\n`;
      parts.unshift(Buffer.from(head, "latin1"));
    }
    if (conn.failure) throw conn.failure;
    const sock = conn.sock;
    if (!sock) throw new Error("the Runtime API connection is closed");
    let flowing = true;
    sock.cork();
    for (const p of parts) flowing = sock.write(p);
    sock.uncork();
    if (!flowing) {
      // Written faster than the Runtime API reads: wait, so that a long stream is not held
      // in memory here.
      let drained = false;
      sock.once("drain", () => {
        drained = true;
        conn.poke();
      });
      await conn.until(() => drained);
    }
  }
}

// A header value as HTTP allows it: controls and characters beyond ASCII percent-encoded.
function headerValue(s) {
  return String(s).replace(/[^\t\x20-\x7e]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"));
}

// The Writable a streaming handler writes to, made on first use: `node:stream` is loaded
// already (by `node:net`), but a function that does not stream needs none of this.
let ResponseStream;
function defineResponseStream() {
  const { Writable } = require("node:stream");
  return class ResponseStream extends Writable {
    #post;
    #wrote = false;

    constructor(post, highWaterMark) {
      super(highWaterMark === undefined ? {} : { highWaterMark });
      this.#post = post;
      // Set by HttpResponseStream.from: called with a writer just before the first bytes.
      this._onBeforeFirstWrite = undefined;
      // Errors reach the runtime through `finished`; one nobody listens for (a write after the
      // end, say) must not end the process.
      this.on("error", () => {});
    }

    setContentType(type) {
      if (this.#wrote) {
        throw Object.assign(new Error("Cannot set content-type, too late."), { name: "Runtime.InvalidStreamingOperation" });
      }
      this.#post.contentType = headerValue(type);
    }

    // As AWS's stream: anything but a string or bytes is written as its JSON.
    write(chunk, encoding, callback) {
      if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) chunk = JSON.stringify(chunk);
      this.#begin();
      return super.write(chunk, encoding, callback);
    }

    // `end(chunk)` writes through `write`, so that the chunk gets the prelude and conversion too.
    end(chunk, encoding, callback) {
      if (typeof chunk === "function") [chunk, encoding, callback] = [undefined, undefined, chunk];
      else if (typeof encoding === "function") [encoding, callback] = [undefined, encoding];
      if (!this.writableEnded && !this.destroyed) {
        if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
        else this.#begin();
      }
      return callback ? super.end(callback) : super.end();
    }

    #begin() {
      if (this.#wrote) return;
      this.#wrote = true;
      const before = this._onBeforeFirstWrite;
      if (typeof before === "function") before((c) => super.write(c));
    }

    _write(chunk, _encoding, callback) {
      this.#post.send(chunk).then(() => callback(), callback);
    }

    _writev(chunks, callback) {
      const data = Buffer.concat(chunks.map((c) => c.chunk));
      this.#post.send(data).then(() => callback(), callback);
    }

    _final(callback) {
      this.#post.end().then(() => callback(), callback);
    }
  };
}

// Resolves when `stream` has finished, rejects if it was destroyed first.
function finished(stream) {
  return require("node:stream/promises").finished(stream);
}

// Runs a streaming handler on one event, as AWS's runtime does: the POST ends when both the
// handler's promise has settled and its stream has ended. A handler that fails before writing
// anything posts `/error`, as a buffered one does; one that fails after ends the chunked body
// with the error's type and its JSON (base64) as trailers.
async function invokeStreaming(handler, id, next) {
  const post = new StreamPost(id);
  ResponseStream ??= defineResponseStream();
  const hwm = parseInt(handler[HIGH_WATER_MARK]);
  const stream = new ResponseStream(post, Number.isNaN(hwm) ? undefined : hwm);
  let failure;
  try {
    const text = next.body.toString("utf8");
    const event = text ? JSON.parse(text) : undefined;
    const r = handler(event, stream, context(next.headers));
    if (r && typeof r.then === "function") {
      if ((await r) !== undefined) console.warn("Streaming handlers ignore return values.");
    } else if (!stream.writableEnded) {
      // A handler that ended its stream before returning is done, promise or not.
      throw new Error("Streaming does not support non-async handlers.");
    }
    await finished(stream);
  } catch (e) {
    failure = e;
  }
  if (failure === undefined) {
    try {
      await post.answer;
    } catch {
      conn.close();
    }
    return;
  }
  const body = errorBody(failure);
  console.error(`Invoke Error \t${JSON.stringify(body)}`);
  if (!post.started && stream.writableLength === 0 && !stream.writableEnded) {
    // Later writes of the handler's are dropped.
    stream.destroy();
    await postError(`/invocation/${id}/error`, body, "Unhandled");
    return;
  }
  post.trailers = {
    "Lambda-Runtime-Function-Error-Type": headerValue(body.errorType),
    "Lambda-Runtime-Function-Error-Body": Buffer.from(trailerJson(body)).toString("base64"),
  };
  try {
    // What the handler wrote before it failed goes out first, then the end with the trailers
    // (which come too late for a stream that had ended already, as on AWS).
    if (!stream.destroyed && !stream.writableEnded) stream.end();
    await finished(stream).catch(() => {});
    await post.end();
    await post.answer;
  } catch {
    conn.close();
  }
}

async function main() {
  let handler;
  let streaming;
  try {
    handler = await loadHandler();
    streaming = streams(handler);
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
    if (streaming) {
      await invokeStreaming(handler, id, next);
      continue;
    }
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
    await request("POST", `/invocation/${id}/response`, out, { "Content-Type": "application/json" });
  }
}

main();
