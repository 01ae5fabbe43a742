"""A hostile function: each action attacks the platform from inside its sandbox and reports what
happened, so that the tests can assert that every attack fails."""
import ctypes
import errno
import os
import socket
import struct
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")

SYS_CLONE, SYS_UNSHARE, SYS_PERSONALITY, SYS_IO_URING_SETUP, SYS_CLONE3 = 56, 272, 135, 425, 435
SIGCHLD = 17
NAMESPACE_FLAGS = {"newns": 0x20000, "newcgroup": 0x02000000, "newuts": 0x04000000,
                   "newipc": 0x08000000, "newuser": 0x10000000, "newpid": 0x20000000,
                   "newnet": 0x40000000}


def outcome(rc):
    if rc >= 0:
        return "ok"
    e = ctypes.get_errno()
    return errno.errorcode.get(e, str(e))


def raw_clone(flags):
    pid = libc.syscall(SYS_CLONE, ctypes.c_ulong(flags | SIGCHLD), None, None, None, None)
    if pid == 0:
        os._exit(0)  # the child of a clone that should never have happened
    if pid > 0:
        os.waitpid(pid, 0)
    return outcome(pid)


def raw_clone3():
    args = ctypes.create_string_buffer(struct.pack("<11Q", 0, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0))
    pid = libc.syscall(SYS_CLONE3, args, ctypes.c_size_t(88))
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    return outcome(pid)


def try_socket(family, kind=socket.SOCK_STREAM, proto=0):
    try:
        socket.socket(family, kind, proto).close()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def syscalls():
    out = {f"clone_{n}": raw_clone(f) for n, f in NAMESPACE_FLAGS.items()}
    out["clone3"] = raw_clone3()
    out["unshare_user"] = outcome(libc.syscall(SYS_UNSHARE, ctypes.c_ulong(0x10000000)))
    params = ctypes.create_string_buffer(120)
    out["io_uring_setup"] = outcome(libc.syscall(SYS_IO_URING_SETUP, ctypes.c_uint(8), params))
    out["socket_vsock"] = try_socket(40)
    out["socket_alg"] = try_socket(38, socket.SOCK_SEQPACKET)
    out["socket_packet"] = try_socket(17, socket.SOCK_RAW)
    out["socket_key"] = try_socket(15, socket.SOCK_RAW, 2)
    out["socket_netlink_audit"] = try_socket(16, socket.SOCK_RAW, 9)
    out["socket_netlink_route"] = try_socket(16, socket.SOCK_RAW, 0)
    out["socket_inet"] = try_socket(socket.AF_INET)
    out["socket_inet6"] = try_socket(socket.AF_INET6)
    out["socket_unix"] = try_socket(socket.AF_UNIX)
    out["personality_read_implies_exec"] = outcome(libc.syscall(SYS_PERSONALITY, ctypes.c_ulong(0x0400000)))
    out["personality_query"] = outcome(libc.syscall(SYS_PERSONALITY, ctypes.c_ulong(0xffffffff)))
    # What ordinary functions do must keep working.
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = "ok" if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7 else "bad"
    box = []
    t = threading.Thread(target=lambda: box.append(1))
    t.start()
    t.join()
    out["thread"] = "ok" if box == [1] else "bad"
    import subprocess
    out["subprocess"] = "ok" if subprocess.run(["/bin/sh", "-c", "exit 3"]).returncode == 3 else "bad"
    return out


def connections(event):
    """Children open as many Runtime API connections as they can and keep them open."""
    host, port = API.split(":")
    per_child, children, hold = event["per_child"], event["children"], event["hold"]
    r, w = os.pipe()
    for _ in range(children):
        if os.fork() == 0:
            socks, n = [], 0
            for _ in range(per_child):
                try:
                    s = socket.create_connection((host, int(port)), timeout=0.5)
                    socks.append(s)
                    n += 1
                except OSError:
                    break
            os.write(w, struct.pack("<I", n))
            time.sleep(hold)
            os._exit(0)
    opened = sum(struct.unpack("<I", os.read(r, 4))[0] for _ in range(children))
    return {"opened": opened}


def stalled_bodies(event):
    """Children post large bodies for a request id that is not in flight, then stall."""
    host, port = API.split(":")
    count, mb, hold = event["count"], event["mb"], event["hold"]
    r, w = os.pipe()
    for _ in range(count):
        if os.fork() == 0:
            sent = 0
            try:
                s = socket.create_connection((host, int(port)), timeout=2)
                s.sendall(f"POST /2018-06-01/runtime/invocation/bogus/response HTTP/1.1\r\n"
                          f"Host: x\r\nContent-Length: {(mb + 1) << 20}\r\n\r\n".encode())
                chunk = b"x" * (1 << 16)
                while sent < mb << 20:
                    s.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            os.write(w, struct.pack("<Q", sent))
            time.sleep(hold)
            os._exit(0)
    sent = sum(struct.unpack("<Q", os.read(r, 8))[0] for _ in range(count))
    return {"sent_mb": sent >> 20}


def long_line(event):
    chunk = "y" * (1 << 20)
    for _ in range(event["mb"]):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    sys.stdout.write("\nshort line after\n")
    sys.stdout.flush()
    return "done"


def bad_utf8(event):
    os.write(1, b"before \xff\xfe\xfd bad bytes\n")
    time.sleep(0.3)
    print("after the bad bytes", flush=True)
    time.sleep(0.3)
    print("still alive", flush=True)
    return "alive"


def flood(event):
    line = "f" * 200 + "\n"
    block = line * 500
    deadline = time.monotonic() + event["s"]
    n = 0
    while time.monotonic() < deadline:
        sys.stdout.write(block)
        n += 500
    sys.stdout.flush()
    return n


def empty_lines(event):
    block = "\n" * 4096
    deadline = time.monotonic() + event["s"]
    n = 0
    while time.monotonic() < deadline:
        sys.stdout.write(block)
        n += 4096
    sys.stdout.flush()
    return n


def numbered(event):
    for i in range(event["n"]):
        print(f"{event['tag']} line {i}")
    sys.stdout.flush()
    return event["n"]


def fork_bomb(event):
    while True:
        try:
            os.fork()
        except OSError:
            pass


def leaks(event):
    out = {"mountinfo": open("/proc/self/mountinfo").read()}
    try:
        out["pid1_cmdline"] = open("/proc/1/cmdline", "rb").read().decode(errors="replace")
    except OSError as e:
        out["pid1_cmdline"] = errno.errorcode.get(e.errno, str(e.errno))
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["usr_bin"] = sorted(os.listdir("/usr/bin"))
    out["uid"] = os.getuid()
    return out


def tmp_fill(event):
    # What the function finds in /tmp at its first invocation, as on Lambda: nothing, and a
    # directory everyone may write to.
    found = sorted(os.listdir("/tmp"))
    mode = oct(os.stat("/tmp").st_mode & 0o7777)
    written = 0
    err = None
    try:
        with open("/tmp/fill", "wb") as f:
            block = b"\0" * (1 << 20)
            while written < event["mb"]:
                f.write(block)
                f.flush()
                written += 1
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    st = os.statvfs("/tmp")
    os.remove("/tmp/fill")
    # How /tmp is mounted: its flags, its filesystem type and the filesystem's own options.
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            fields = head.split()
            if fields[4] == "/tmp":
                fstype, _source, superopts = tail.split()[:3]
                mount = {"flags": fields[5].split(","), "type": fstype,
                         "options": superopts.split(",")}
    return {
        "written_mb": written,
        "error": err,
        "size_mb": st.f_blocks * st.f_frsize >> 20,
        "found": found,
        "mode": mode,
        "mount": mount,
    }


def socket_buffers(event):
    # Connections to itself on its own loopback, written to and never read: the kernel holds
    # what each carries, in its send and receive buffers (bounded: 64 writes per connection).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(event["pairs"])
    port = listener.getsockname()[1]
    pairs, queued, err = [], 0, None
    chunk = b"\0" * (1 << 20)
    for _ in range(event["pairs"]):
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            pairs.append((c, listener.accept()[0]))
        except OSError as e:
            err = errno.errorcode.get(e.errno, str(e.errno))
            break
        c.setblocking(False)
        for _ in range(64):
            try:
                queued += c.send(chunk)
            except OSError:
                break
    return {"queued_mb": queued >> 20, "pairs": len(pairs), "error": err}


def handler(event, context):
    action = event["action"]
    if action == "syscalls":
        return syscalls()
    if action == "connections":
        return connections(event)
    if action == "stalled_bodies":
        return stalled_bodies(event)
    if action == "long_line":
        return long_line(event)
    if action == "bad_utf8":
        return bad_utf8(event)
    if action == "flood":
        return flood(event)
    if action == "empty_lines":
        return empty_lines(event)
    if action == "numbered":
        return numbered(event)
    if action == "fork_bomb":
        return fork_bomb(event)
    if action == "leaks":
        return leaks(event)
    if action == "socket_buffers":
        return socket_buffers(event)
    if action == "tmp_fill":
        return tmp_fill(event)
    if action == "sleep":
        time.sleep(event["s"])
        return {"uid": os.getuid()}
    if action == "uid":
        return {"uid": os.getuid()}
    raise ValueError(f"unknown action {action}")
