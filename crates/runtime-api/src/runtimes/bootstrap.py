"""Lamina's Python runtime client: polls the Lambda Runtime API and calls the handler.

Runs as /var/runtime/bootstrap.py under the host's python3. Handler `module.function`, resolved
from /var/task (and /opt/python for layers); the context object matches AWS's. `logging` records
are written as AWS's runtime writes them: `[LEVEL]\ttime\trequest id\tmessage` in Text format,
one JSON object per record in JSON format (AWS_LAMBDA_LOG_FORMAT), at AWS_LAMBDA_LOG_LEVEL.

`logging` and `traceback` (a fifth of an empty function's cold start) are imported only when
used: `logging` is set up the moment anything imports it, before the importer sees it. The
Runtime API is spoken over `_socket`, without `socket` (and `selectors`), and handlers are
imported with `__import__`, without `importlib`: a few milliseconds more.
"""
import _socket
import json
import os
import sys
import time


def await_launch(fd):
    """Started ahead, before the sandbox knew its function (`_LAMINA_LAUNCH_FD`): waits for the
    function's working directory and variables, which arrive once its root is complete. Imports
    looked for on the path meanwhile (the function's own directories were still empty) are
    forgotten. A sandbox let go unlaunched closes the pipe: nothing to do."""
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    if not data:
        os._exit(0)
    launch = json.loads(data)
    os.environ.clear()
    os.environ.update(launch["env"])
    os.chdir(launch["cwd"])
    sys.path_importer_cache.clear()
    # `site` looked for sitecustomize and usercustomize when the layers' directories were still
    # empty: a layer's comes first on the path, so it is what a plain start would have run (the
    # system's, if it has one, has run before it here).
    import site
    for name, run in (("sitecustomize", site.execsitecustomize),
                      ("usercustomize", site.ENABLE_USER_SITE and site.execusercustomize)):
        if run and any(p.startswith("/opt/") and _has_module(p, name) for p in _path_before(name)):
            sys.modules.pop(name, None)
            run()


def _path_before(name):
    """The path's entries up to the one `name` was found in at start (all of them if it was not)."""
    found = getattr(sys.modules.get(name), "__file__", None) or ""
    for p in sys.path:
        if found.startswith(p.rstrip("/") + "/"):
            return
        yield p


def _has_module(directory, name):
    return any(os.path.exists(f"{directory}/{name}{ending}")
               for ending in (".py", ".pyc", "/__init__.py"))


if "_LAMINA_LAUNCH_FD" in os.environ:
    await_launch(int(os.environ["_LAMINA_LAUNCH_FD"]))

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PREFIX = "/2018-06-01/runtime"
JSON_LOGS = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
# logging's numbers, without importing it.
LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40, "FATAL": 50}
request_id = None


def _time(created, ms=False):
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{t}.{int(created % 1 * 1000):03d}Z" if ms else t + "Z"


def _stack(e):
    import traceback
    return traceback.format_list(traceback.extract_tb(e.__traceback__))


def setup_logging(logging):
    """Sends the root logger's records to stdout in AWS's format."""

    class JsonFormatter(logging.Formatter):
        def format(self, record):
            out = {"timestamp": _time(record.created), "level": record.levelname,
                   "message": record.getMessage(), "logger": record.name}
            if request_id:
                out["requestId"] = request_id
            if record.exc_info and record.exc_info[1] is not None:
                e = record.exc_info[1]
                out.update(errorType=type(e).__name__, errorMessage=str(e), stackTrace=_stack(e))
            return json.dumps(out, default=str)

    class TextFormatter(logging.Formatter):
        def format(self, record):
            line = f"[{record.levelname}]\t{_time(record.created, True)}\t{request_id or ''}\t{record.getMessage()}"
            if record.exc_info:
                line += "\n" + self.formatException(record.exc_info)
            return line

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if JSON_LOGS else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if JSON_LOGS:
        logging.addLevelName(5, "TRACE")
        root.setLevel(LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper(), logging.INFO))


class SetUpLogging:
    """An import hook: whoever imports `logging` first (the function, or a library it uses)
    gets the standard library's, already set up; the hook then removes itself. It looks for
    `logging` on the path as it was before the function's directories were put first, as the
    module was found when this client imported it at its start."""

    path = None

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "logging":
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, cls.path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _SetUpAfter(spec.loader)
                return spec
        return None

    @classmethod
    def install(cls):
        if "logging" in sys.modules:
            setup_logging(sys.modules["logging"])
        else:
            cls.path = list(sys.path)
            sys.meta_path.insert(0, cls)


class _SetUpAfter:
    """A loader that runs `logging`'s own, then sets it up. Only `exec_module` differs."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def exec_module(self, module):
        self._inner.exec_module(module)
        if SetUpLogging in sys.meta_path:
            sys.meta_path.remove(SetUpLogging)
        try:
            setup_logging(module)
        except Exception as e:  # noqa: BLE001 - never break the function's import
            print(f"[WARNING] logging is not in Lambda's format: {e}", file=sys.stderr)


def log_error(err):
    """The line an unhandled error leaves in the log."""
    if JSON_LOGS:
        line = json.dumps({"timestamp": _time(time.time()), "level": "ERROR", "requestId": request_id or "", **err})
    else:
        line = f"[ERROR] {err['errorType']}: {err['errorMessage']}"
    print(line, file=sys.stderr, flush=True)


class Conn:
    """One keep-alive HTTP/1.1 connection to the Runtime API. Written here because importing
    http.client (email, ssl) would cost more than the rest of this runtime client's start."""

    def __init__(self):
        host, port = API.rsplit(":", 1)
        self.addr = (host, int(port))
        self.sock = None
        self.buf = bytearray()

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buf = bytearray()

    def request(self, method, path, body=None, headers=None):
        """Sends one request; returns the response's headers (names in lower case) and body."""
        body = body or b""
        head = f"{method} {PREFIX}{path} HTTP/1.1\r\nHost: {API}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
        for attempt in range(2):
            try:
                if self.sock is None:
                    self.sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                    self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                    self.sock.connect(self.addr)
                self.sock.sendall(head.encode("latin-1") + body)
                return self._response()
            except (OSError, ValueError):
                self.close()
                if attempt:
                    raise

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("the Runtime API closed the connection")
        self.buf += data

    def _line(self):
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > 65536:
                raise ValueError("a header line longer than 64 KiB")
            self._fill()
        line = bytes(self.buf[:end + 1])
        del self.buf[:end + 1]
        return line

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _response(self):
        if not self._line().startswith(b"HTTP/1."):
            raise ValueError("not an HTTP/1.1 response")
        headers = {}
        while (line := self._line()) not in (b"\r\n", b"\n"):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self._line().split(b";")[0], 16):
                chunks.append(self._read(size))
                self._line()
            while self._line() not in (b"\r\n", b"\n"):
                pass
            body = b"".join(chunks)
        else:
            body = self._read(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return headers, body


class Context:
    def __init__(self, headers):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.aws_request_id = headers.get("lambda-runtime-aws-request-id")
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn")
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
        cc = headers.get("lambda-runtime-client-context")
        self.client_context = _ClientContext(json.loads(cc)) if cc else None
        ci = headers.get("lambda-runtime-cognito-identity")
        self.identity = _Identity(json.loads(ci)) if ci else None
        self.tenant_id = headers.get("lambda-runtime-aws-tenant-id")

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)


class _ClientContext:
    def __init__(self, d):
        self.client = d.get("client")
        self.custom = d.get("custom")
        self.env = d.get("env")


class _Identity:
    def __init__(self, d):
        self.cognito_identity_id = d.get("cognitoIdentityId")
        self.cognito_identity_pool_id = d.get("cognitoIdentityPoolId")


def error_body(e, request_id=None):
    body = {
        "errorMessage": str(e),
        "errorType": type(e).__name__,
        "stackTrace": _stack(e),
    }
    if request_id:
        body["requestId"] = request_id
    return body


def post_error(conn, path, body, error_type):
    data = json.dumps(body).encode()
    conn.request("POST", path, data, {"Lambda-Runtime-Function-Error-Type": error_type, "Content-Type": "application/json"})


def load_handler(conn):
    spec = os.environ.get("_HANDLER", "")
    sys.path[:0] = [os.environ.get("LAMBDA_TASK_ROOT", "/var/task")]
    try:
        module_name, func_name = spec.rsplit(".", 1)
    except ValueError:
        body = {"errorMessage": f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)", "errorType": "Runtime.MalformedHandlerName", "stackTrace": []}
        return None, body
    try:
        name = module_name.replace("/", ".")
        __import__(name)
        module = sys.modules[name]
    except Exception as e:  # noqa: BLE001 - any import failure is the user's
        kind = "Runtime.ImportModuleError" if isinstance(e, ImportError) else "Runtime.UserCodeSyntaxError" if isinstance(e, SyntaxError) else "Runtime.ImportModuleError"
        return None, {"errorMessage": f"Unable to import module '{module_name}': {e}", "errorType": kind, "requestId": "", "stackTrace": _stack(e)}
    handler = getattr(module, func_name, None)
    if handler is None:
        return None, {"errorMessage": f"Handler '{func_name}' missing on module '{module_name}'", "errorType": "Runtime.HandlerNotFound", "requestId": "", "stackTrace": []}
    return handler, None


def main():
    global request_id
    # Each line reaches the log as it is printed, as on Lambda (stdout is a pipe, which Python
    # would otherwise buffer until the invocation ends).
    sys.stdout.reconfigure(line_buffering=True)
    SetUpLogging.install()
    conn = Conn()
    handler, init_error = load_handler(conn)
    sys.stdout.flush()
    if init_error:
        log_error(init_error)
        post_error(conn, "/init/error", init_error, init_error["errorType"])
        sys.exit(1)
    while True:
        headers, body = conn.request("GET", "/invocation/next")
        request_id = headers.get("lambda-runtime-aws-request-id")
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        try:
            event = json.loads(body) if body else None
            result = handler(event, Context(headers))
            out = json.dumps(result).encode()
        except Exception as e:  # noqa: BLE001 - reported to the caller as Lambda does
            err = error_body(e, request_id)
            log_error(err)
            sys.stdout.flush()
            sys.stderr.flush()
            post_error(conn, f"/invocation/{request_id}/error", err, "Unhandled")
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        conn.request("POST", f"/invocation/{request_id}/response", out, {"Content-Type": "application/json"})


if __name__ == "__main__":
    main()
