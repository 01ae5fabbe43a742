//! Functions' networks, for real, entirely inside namespaces this test makes: `lh` stands in for
//! the host (the server's network layer runs there: its firewall table, its interfaces), `inet`
//! for the internet (HTTP servers on TEST-NET addresses and on the metadata address), `corp` for
//! a private network a VPC subnet is bound to. No packet goes anywhere else, and every client
//! call is bounded by a one-second timeout.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{TestApp, host_python, zip_of};
use crate::images::Aws;

/// The function: connects to each target (an HTTP GET with a 1 s timeout) and says what it got;
/// `listen` keeps a listener open in the environment; `gateway` is its default route's.
const PROBE: &str = r#"
import json, socket, struct

_listeners = []

def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        f = line.split()
        if f[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(f[2], 16)))

def me():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("203.0.113.7", 9))
    return s.getsockname()[0]

def get(host, port):
    try:
        c = socket.create_connection((host, port), timeout=1)
    except OSError as e:
        return "blocked " + type(e).__name__
    with c:
        data = b""
        try:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return "open, no answer"
        return "open " + data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip()

def handler(event, context):
    out = {"me": me(), "gateway": gateway()}
    if "listen" in event:
        s = socket.socket()
        s.bind(("0.0.0.0", event["listen"]))
        s.listen(8)
        _listeners.append(s)
    for host, port in event.get("targets", []):
        host = out["gateway"] if host == "gateway" else out["me"] if host == "me" else host
        out[f"{host}:{port}"] = get(host, port)
    if "hold" in event:
        host, port, n = event["hold"]
        held = []
        for _ in range(n):
            try:
                held.append(socket.create_connection((host, port), timeout=0.5))
            except OSError:
                pass
        out["held"] = len(held)
        for c in held:
            c.close()
    return out
"#;

/// A server answering every GET with the client's address, in a namespace; it prints `ready`.
const ECHO_SERVER: &str = r#"
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
servers = [S(("0.0.0.0", int(p)), H) for p in sys.argv[1:]]
import threading
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
"#;

/// The namespaces and servers of one test; dropping it removes them all.
pub(crate) struct Lab {
    names: Vec<String>,
    servers: Vec<Child>,
    /// Whether `/run/netns` was a mount before: the first `ip netns add` on a host binds it onto
    /// itself, and `ip netns del` leaves that mount; the lab removes it if it made it.
    run_netns_mounted: bool,
}

const RUN_NETNS: &str = "/run/netns";

fn is_mount_point(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("reading /proc/self/mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

impl Lab {
    pub(crate) fn ns(&self, role: &str) -> String {
        format!("lmn{}-{role}", std::process::id())
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("ip runs");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn new() -> Lab {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the network tests make network namespaces and need root"
        );
        let mut lab = Lab {
            names: Vec::new(),
            servers: Vec::new(),
            run_netns_mounted: is_mount_point(RUN_NETNS),
        };
        for role in ["lh", "inet", "corp"] {
            let n = lab.ns(role);
            // A namespace of the same name left by a crashed run goes first (usually none is).
            let _ = Command::new("ip")
                .args(["netns", "del", &n])
                .stderr(std::process::Stdio::null())
                .status();
            lab.ip(&["netns", "add", &n]);
            lab.names.push(n);
        }
        let (lh, inet, corp) = (lab.ns("lh"), lab.ns("inet"), lab.ns("corp"));
        lab.ip(&[
            "-n", &lh, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", &inet,
        ]);
        lab.ip(&[
            "-n", &lh, "link", "add", "corp0", "type", "veth", "peer", "name", "eth0", "netns",
            &corp,
        ]);
        for (ns, dev, addr) in [
            (&lh, "up0", "198.51.100.2/24"),
            (&lh, "corp0", "10.1.0.1/16"),
            (&inet, "eth0", "198.51.100.1/24"),
            (&corp, "eth0", "10.1.2.3/16"),
            (&inet, "lo", "203.0.113.7/32"),
            (&inet, "lo", "169.254.169.254/32"),
        ] {
            lab.ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        }
        for (ns, dev) in [
            (&lh, "lo"),
            (&lh, "up0"),
            (&lh, "corp0"),
            (&inet, "lo"),
            (&inet, "eth0"),
            (&corp, "lo"),
            (&corp, "eth0"),
        ] {
            lab.ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab.ip(&["-n", &lh, "route", "add", "default", "via", "198.51.100.1"]);
        lab.serve(&inet, &["80"]);
        lab.serve(&corp, &["5432", "6379"]);
        // The stand-in host's own service (as the Lamina API would be).
        lab.serve(&lh, &["9001"]);
        lab
    }

    fn serve(&mut self, ns: &str, ports: &[&str]) {
        self.serve_script(ns, ECHO_SERVER, ports);
    }

    /// Runs the Python `script` with `args` in the namespace of `role`, until the lab goes; it
    /// prints `ready` once it serves.
    pub(crate) fn serve_script(&mut self, ns: &str, script: &str, args: &[&str]) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/python3", "-c", script])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "an echo server in {ns} did not start");
        self.servers.push(child);
    }

    pub(crate) fn path(&self, role: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(self.ns(role))
    }

    /// What `cmd` prints inside the stand-in host.
    fn in_lh(&self, cmd: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("lh")])
            .args(cmd)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        let none_left = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty());
        if !self.run_netns_mounted && none_left && is_mount_point(RUN_NETNS) {
            let _ = Command::new("umount").arg(RUN_NETNS).status();
        }
    }
}

fn invoke(aws: &Aws, name: &str, event: Value, dir: &std::path::Path) -> Value {
    let out = dir.join("out.json");
    aws.ok(&[
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        &event.to_string(),
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn create(aws: &Aws, name: &str, zip: &std::path::Path, extra: &[&str]) {
    let mut args = vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        Box::leak(host_python().into_boxed_str()),
        "--handler",
        "probe.handler",
        "--timeout",
        "30",
        "--role",
        "arn:aws:iam::000000000000:role/r",
        "--zip-file",
    ];
    let file = format!("fileb://{}", zip.display());
    args.push(&file);
    args.extend_from_slice(extra);
    aws.ok(&args);
}

fn status(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

#[test]
fn default_egress_reaches_the_internet_only_and_vpcs_reach_what_their_groups_allow() {
    let lab = Lab::new();
    let app = TestApp::start(
        "[network]\negress = true\npool = \"10.254.0.0/24\"\nspare = 2\nconnections = 64\n[network.interfaces]\ncorp0 = [\"000000000000\"]\nup0 = [\"000000000000\"]\n",
        Some(lab.path("lh")),
    );
    let aws = Aws::new(app.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("probe.zip");
    std::fs::write(&zip, zip_of(&[("probe.py", PROBE.as_bytes())])).unwrap();

    // A second sandbox with a listener, for the sandbox-to-sandbox check.
    create(&aws, "other", &zip, &[]);
    let other = invoke(
        &aws,
        "other",
        json!({"listen": 8000, "targets": [["me", 8000]]}),
        dir.path(),
    );
    let other_addr = status(&other, "me");
    assert!(other_addr.starts_with("10.254.0."), "{other}");
    assert!(
        status(&other, &format!("{other_addr}:8000")).starts_with("open"),
        "the listener works from inside its own sandbox: {other}"
    );

    create(&aws, "default", &zip, &[]);
    let targets = json!([
        ["203.0.113.7", 80],
        ["169.254.169.254", 80],
        ["10.1.2.3", 5432],
        ["198.51.100.2", 9001],
        ["gateway", 9001],
        [other_addr, 8000],
    ]);
    let r = invoke(&aws, "default", json!({ "targets": targets }), dir.path());
    let gw = status(&r, "gateway");
    assert_eq!(
        status(&r, "203.0.113.7:80"),
        "open 198.51.100.2",
        "the internet is reached, masqueraded to the host's address: {r}"
    );
    for blocked in [
        "169.254.169.254:80".to_owned(),
        "10.1.2.3:5432".to_owned(),
        "198.51.100.2:9001".to_owned(),
        format!("{gw}:9001"),
        format!("{other_addr}:8000"),
    ] {
        assert!(
            status(&r, &blocked).starts_with("blocked"),
            "{blocked} must be blocked: {r}"
        );
    }
    // The stand-in host's service is up: the block above is the firewall's.
    assert_eq!(
        lab.in_lh(&["python3", "-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9001/',timeout=1).read().decode())"]).trim(),
        "127.0.0.1"
    );

    // A VPC whose subnet is bound to corp0, with a group allowing one private port.
    let vpc = aws.ok(&["ec2", "create-vpc", "--cidr-block", "10.1.0.0/16"]);
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap().to_owned();
    let subnet = aws.ok(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc_id,
        "--cidr-block",
        "10.1.2.0/24",
        "--tag-specifications",
        "ResourceType=subnet,Tags=[{Key=lamina:interface,Value=corp0}]",
    ]);
    let subnet_id = subnet["Subnet"]["SubnetId"].as_str().unwrap().to_owned();
    let sg = aws.ok(&[
        "ec2",
        "create-security-group",
        "--group-name",
        "db",
        "--description",
        "db only",
        "--vpc-id",
        &vpc_id,
    ]);
    let sg_id = sg["GroupId"].as_str().unwrap().to_owned();
    aws.ok(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &sg_id,
        "--ip-permissions",
        r#"[{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]"#,
    ]);
    aws.ok(&[
        "ec2", "authorize-security-group-egress", "--group-id", &sg_id, "--ip-permissions",
        r#"[{"IpProtocol":"tcp","FromPort":5432,"ToPort":5432,"IpRanges":[{"CidrIp":"10.1.2.0/24"}]},{"IpProtocol":"tcp","FromPort":80,"ToPort":80,"IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]"#,
    ]);
    let vpc_config = format!("SubnetIds={subnet_id},SecurityGroupIds={sg_id}");
    create(&aws, "private", &zip, &["--vpc-config", &vpc_config]);
    let targets = json!([
        ["10.1.2.3", 5432],
        ["10.1.2.3", 6379],
        ["203.0.113.7", 80],
        ["169.254.169.254", 80]
    ]);
    let r = invoke(&aws, "private", json!({ "targets": targets }), dir.path());
    assert_eq!(
        status(&r, "10.1.2.3:5432"),
        "open 10.1.0.1",
        "the private port its group allows, through the subnet's interface: {r}"
    );
    for blocked in ["10.1.2.3:6379", "203.0.113.7:80", "169.254.169.254:80"] {
        assert!(status(&r, blocked).starts_with("blocked"), "{blocked}: {r}");
    }

    // A NAT gateway opens the internet, as the group allows, to the running environment too.
    aws.ok(&["ec2", "create-nat-gateway", "--subnet-id", &subnet_id]);
    let r = invoke(&aws, "private", json!({ "targets": targets }), dir.path());
    assert_eq!(status(&r, "203.0.113.7:80"), "open 198.51.100.2", "{r}");
    assert_eq!(status(&r, "10.1.2.3:5432"), "open 10.1.0.1", "{r}");
    assert!(status(&r, "10.1.2.3:6379").starts_with("blocked"), "{r}");
    assert!(
        status(&r, "169.254.169.254:80").starts_with("blocked"),
        "{r}"
    );

    // VPCs any account can make, on the metadata address's network or on the private network
    // behind corp0, with subnets bound to no interface and groups that allow everything: the
    // host's routes lead there, and the firewall still drops both. Bound to an interface the
    // account was given (up0, where the host's route to the metadata address goes), a VPC on
    // the link-local range still reaches nothing of it.
    for (name, cidr, subnet, target, interface) in [
        (
            "meta",
            "169.254.0.0/16",
            "169.254.169.0/24",
            ["169.254.169.254", "80"],
            None,
        ),
        (
            "lan",
            "10.1.0.0/16",
            "10.1.5.0/24",
            ["10.1.2.3", "5432"],
            None,
        ),
        (
            "bound",
            "169.254.0.0/16",
            "169.254.169.0/24",
            ["169.254.169.254", "80"],
            Some("up0"),
        ),
    ] {
        let vpc = aws.ok(&["ec2", "create-vpc", "--cidr-block", cidr]);
        let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap().to_owned();
        let tags = interface
            .map(|i| format!("ResourceType=subnet,Tags=[{{Key=lamina:interface,Value={i}}}]"));
        let mut args = vec![
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc_id,
            "--cidr-block",
            subnet,
        ];
        if let Some(t) = &tags {
            args.extend(["--tag-specifications", t.as_str()]);
        }
        let subnet = aws.ok(&args);
        let subnet_id = subnet["Subnet"]["SubnetId"].as_str().unwrap().to_owned();
        let sg = aws.ok(&[
            "ec2",
            "create-security-group",
            "--group-name",
            "open",
            "--description",
            "everything",
            "--vpc-id",
            &vpc_id,
        ]);
        let sg_id = sg["GroupId"].as_str().unwrap().to_owned();
        aws.ok(&["ec2", "create-nat-gateway", "--subnet-id", &subnet_id]);
        let vpc_config = format!("SubnetIds={subnet_id},SecurityGroupIds={sg_id}");
        create(&aws, name, &zip, &["--vpc-config", &vpc_config]);
        let r = invoke(
            &aws,
            name,
            json!({ "targets": [[target[0], target[1].parse::<u16>().unwrap()], ["203.0.113.7", 80]] }),
            dir.path(),
        );
        assert!(
            status(&r, &target.join(":")).starts_with("blocked"),
            "{name}: {r}"
        );
        assert_eq!(
            status(&r, "203.0.113.7:80"),
            "open 198.51.100.2",
            "{name}: the internet, through its NAT gateway: {r}"
        );
    }

    // A function holds at most `network.connections` connections at once: the rest of its
    // new ones are dropped, and the host's connection-tracking table is not its to fill.
    create(&aws, "many", &zip, &[]);
    let r = invoke(
        &aws,
        "many",
        json!({ "hold": ["203.0.113.7", 80, 72] }),
        dir.path(),
    );
    // The kernel forgets dropped attempts lazily (an earlier environment with the same address
    // made some), so the count may start above nothing; it never passes the limit.
    let held = r["held"].as_u64().unwrap();
    assert!((32..=64).contains(&held), "{r}");

    // Bytes per function, in /metrics.
    let metrics = http_get(&format!("{}/metrics", app.addr));
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("lamina_function_network_sent_bytes_total")
                && l.contains("function=\"default\"")
        })
        .unwrap_or_else(|| panic!("no network bytes for the default function:\n{metrics}"));
    let bytes: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(bytes > 100.0, "{line}");

    // The host's ends of the pairs have no IPv6 address and no IPv6 route: the host's table,
    // whose every change walks all of it, does not grow with the sandboxes.
    let links = lab.in_lh(&["ip", "-o", "link"]);
    assert!(
        links.contains(" lv"),
        "no sandbox link on the host: {links}"
    );
    let v6 = lab.in_lh(&["ip", "-6", "route", "show", "table", "all"]);
    assert!(
        !v6.lines().any(|l| l.contains(" dev lv")),
        "IPv6 routes on the sandboxes' links:\n{v6}"
    );
    let v6 = lab.in_lh(&["ip", "-6", "-o", "addr"]);
    assert!(
        !v6.lines().any(|l| l.contains(" lv")),
        "IPv6 addresses on the sandboxes' links:\n{v6}"
    );

    drop(app);
    let links = lab.in_lh(&["ip", "-o", "link"]);
    assert!(
        !links.contains(" lv"),
        "interfaces outlived the server:\n{links}"
    );
    let tables = lab.in_lh(&["nft", "list", "tables"]);
    assert!(
        !tables.contains("lamina"),
        "the firewall table outlived the server: {tables}"
    );
}

/// A plain HTTP/1.0 GET on loopback (the test is synchronous), its body.
fn http_get(addr_and_path: &str) -> String {
    use std::io::{Read, Write};
    let (addr, path) = addr_and_path.split_once('/').unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(c, "GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}
