import ctypes
import errno
import json
import os
import socket
import time

STATE = {"n": 0}
libc = ctypes.CDLL(None, use_errno=True)


def handler(event, context):
    STATE["n"] += 1
    action = event.get("action")
    if action == "echo":
        keys = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                "LAMBDA_TASK_ROOT", "_HANDLER", "TZ", "AWS_REGION", "AWS_LAMBDA_RUNTIME_API", "USER_VAR",
                "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_EXECUTION_ENV"]
        print("echo line", STATE["n"])
        return {"event": event, "n": STATE["n"], "request_id": context.aws_request_id,
                "arn": context.invoked_function_arn, "env": {k: os.environ.get(k) for k in keys},
                "remaining": context.get_remaining_time_in_millis(),
                "client_context": getattr(context.client_context, "custom", None)}
    if action == "ticker":
        if "ticks" not in STATE:
            import threading
            STATE["ticks"] = 0

            def tick():
                while True:
                    time.sleep(0.01)
                    STATE["ticks"] += 1
            threading.Thread(target=tick, daemon=True).start()
        return STATE["ticks"]
    if action == "raise":
        raise ValueError("boom")
    if action == "sleep":
        time.sleep(event["s"])
        return "slept"
    if action == "exit":
        os._exit(3)
    if action == "hog":
        chunks = [bytearray(1 << 20) for _ in range(event["mb"])]
        return len(chunks)
    if action == "big":
        return "x" * (7 << 20)
    if action == "tmp":
        written = 0
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
                    written += 1
        except OSError as e:
            err = errno.errorcode.get(e.errno, str(e.errno))
        os.remove("/tmp/fill")
        return {"written_mb": written, "error": err}
    if action == "tmp_persist":
        existed = os.path.exists("/tmp/marker")
        with open("/tmp/marker", "w") as f:
            f.write("x")
        return {"existed": existed}
    if action == "cpu":
        wall0, cpu0 = time.monotonic(), time.process_time()
        while time.monotonic() - wall0 < event["s"]:
            pass
        return (time.process_time() - cpu0) / (time.monotonic() - wall0)
    if action == "probe":
        out = {"uid": os.getuid(), "root_entries": sorted(os.listdir("/")),
               "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
               "shadow": os.path.exists("/etc/shadow"), "host_root_home": os.path.exists("/root"),
               "hostname": socket.gethostname(),
               "ahead": b"_LAMINA_LAUNCH_FD=" in open("/proc/self/environ", "rb").read(),
               "cap_eff": [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0],
               "mounts": [l.split()[4] for l in open("/proc/self/mountinfo")],
               "task_mount": [l for l in open("/proc/self/mountinfo") if l.split()[4] == "/var/task"],
               "task_files": sorted(os.listdir("/var/task"))}
        try:
            socket.create_connection(("127.0.0.1", event["port"]), timeout=1)
            out["host_port"] = "connected"
        except OSError as e:
            out["host_port"] = errno.errorcode.get(e.errno, str(e))
        try:
            os.setuid(0)
            out["setuid"] = "succeeded"
        except OSError as e:
            out["setuid"] = errno.errorcode.get(e.errno, str(e))
        rc = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
        out["mount"] = "succeeded" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
        rc = libc.ptrace(16, os.getppid(), None, None)
        out["ptrace"] = "succeeded" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
        try:
            with open("/var/task/new", "w") as f:
                f.write("x")
            out["write_task"] = "succeeded"
        except OSError as e:
            out["write_task"] = errno.errorcode.get(e.errno, str(e))
        return out
    if action == "forkbomb":
        children, err = [], None
        for _ in range(4000):
            try:
                pid = os.fork()
            except OSError as e:
                err = errno.errorcode.get(e.errno, str(e))
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return {"forked": len(children), "error": err}
    return {"unknown": action}
