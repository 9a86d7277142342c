#!/usr/bin/env python3
"""Syncthing beside Meshwork on the same bytes, in the same run (issue 15).

Called by bench/syncthing_compare.sh, which installs Syncthing, builds
files_bench and cleans up. This script, for each case:

1. writes the data once: the very bytes files_bench writes (its xorshift
   generator, reproduced here), so both products move the same bytes;
2. runs two Syncthing instances that talk only over 127.0.0.1 (every
   discovery, relay, NAT, STUN, reporting and upgrade setting off; checked
   in the running config and in each process's open sockets), lets the
   sender scan (not timed), then starts the receiver and times until its
   folder is in sync and the bytes are on disk; checks them with cmp/diff;
3. runs `files_bench` for the same case (Meshwork and the plain TCP copy
   ceiling) and reads its table;
4. prints one table per case.

Each Syncthing instance and each files_bench runs in a process group of its
own, whose id is listed in WORK/pids (one a line) so the shell script's trap
can end it even if this script dies.
"""

import argparse
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

FOLDER_ID = "bench"
FILE_SIZE = 100 * 1024  # one file of the folder case, as in files_bench
SEED = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1

# Where each process group started here is listed for the shell script's trap.
PIDFILE = None

# No proxy, ever: every request of this script goes to 127.0.0.1 directly.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the data

C_XORSHIFT = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
/* files_bench's write_random: xorshift64 (13, 7, 17) from one fixed seed,
   each state written as 8 little-endian bytes. */
int main(int argc, char **argv) {
    unsigned long long left = strtoull(argv[1], 0, 10);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    static unsigned char buf[1 << 20];
    while (left > 0) {
        for (size_t i = 0; i < sizeof buf; i += 8) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            for (int b = 0; b < 8; b++) buf[i + b] = (unsigned char)(x >> (8 * b));
        }
        size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
        if (fwrite(buf, 1, n, stdout) != n) return 1;
        left -= n;
    }
    return fflush(stdout) != 0;
}
"""


def xorshift_prefix(size):
    """The first `size` bytes files_bench's write_random writes (pure Python)."""
    out = bytearray()
    x = SEED
    while len(out) < size:
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        out += x.to_bytes(8, "little")
    return bytes(out[:size])


def write_xorshift_file(path, size, work):
    """files_bench's source.bin of `size` bytes: with a C helper if a C
    compiler is here (a second per GiB), else in Python (minutes per GiB)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        src, exe = os.path.join(work, "xorshift.c"), os.path.join(work, "xorshift")
        if not os.path.exists(exe):
            with open(src, "w") as f:
                f.write(C_XORSHIFT)
            subprocess.run([cc, "-O2", "-o", exe, src], check=True)
            # The helper must agree with the Python reference.
            probe = subprocess.run([exe, str(3 * 2**20 + 12345)], check=True,
                                   stdout=subprocess.PIPE).stdout
            assert probe == xorshift_prefix(len(probe)), "xorshift helper disagrees"
        with open(path, "wb") as f:
            subprocess.run([exe, str(size)], check=True, stdout=f)
    else:
        log("no C compiler: generating the file in Python (slow)")
        with open(path, "wb") as f:
            f.write(xorshift_prefix(size))


def folder_layout(files):
    """files_bench's tree: d{i % 10}/f{i:05}.bin."""
    return [f"d{i % 10}/f{i:05}.bin" for i in range(files)]


def write_folder(root, files, distinct):
    """The folder case's tree. `distinct=False`: the bytes files_bench
    writes — every file the same 100 KiB (its generator restarts from the
    same seed for each file). `distinct=True`: each file its own random
    bytes from the OS."""
    same = xorshift_prefix(FILE_SIZE)
    for rel in folder_layout(files):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(os.urandom(FILE_SIZE) if distinct else same)


# --------------------------------------------------------------- syncthing

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_text(parent, tag, value):
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag)
    el.text = str(value)


# Options that would make Syncthing talk to anything but 127.0.0.1, or use
# the machine differently from a plain run: (name, value) as written to
# config.xml and as /rest/config must report them back.
OFFLINE_OPTIONS = [
    ("globalAnnounceEnabled", "false"),   # global discovery
    ("localAnnounceEnabled", "false"),    # LAN broadcast / multicast discovery
    ("relaysEnabled", "false"),           # relays
    ("natEnabled", "false"),              # UPnP / NAT-PMP
    ("announceLANAddresses", "false"),
    ("stunKeepaliveStartS", "0"),         # STUN off
    ("stunKeepaliveMinS", "0"),
    ("urAccepted", "-1"),                 # usage reporting declined
    ("urSeen", "3"),                      # (and not asked about again)
    ("urInitialDelayS", "86400"),
    ("crashReportingEnabled", "false"),
    ("autoUpgradeIntervalH", "0"),        # no upgrade checks
    ("upgradeToPreReleases", "false"),
    ("startBrowser", "false"),
    ("restartOnWakeup", "false"),
    # Not networking: Syncthing renices itself by default; off, so it gets
    # the same CPU and I/O priority as files_bench.
    ("setLowPriority", "false"),
]
# Lists emptied: no discovery server, STUN server, reporting, crash or
# release URL to fall back to.
OFFLINE_EMPTIED = ["globalAnnounceServer", "stunServer", "urURL",
                   "crashReportingURL", "releasesURL"]


class Syncthing:
    def __init__(self, name, work, folder_path, folder_type, pidfile):
        self.name = name
        self.home = os.path.join(work, f"st-{name}")
        self.folder_path = folder_path
        self.folder_type = folder_type
        self.pidfile = pidfile
        self.port = free_port()
        self.gui_port = free_port()
        self.apikey = secrets.token_hex(16)
        self.proc = None
        self.logfile = os.path.join(work, f"st-{name}.log")
        subprocess.run(["syncthing", "generate", f"--home={self.home}",
                        "--no-default-folder", "--skip-port-probing"],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=self.env())
        self.config = os.path.join(self.home, "config.xml")
        self.device_id = ET.parse(self.config).getroot().find("device").get("id")

    @staticmethod
    def env():
        env = {k: v for k, v in os.environ.items()
               if not k.lower().endswith("_proxy")}  # no proxy for BEP dials
        env.update(STNOUPGRADE="1", STNORESTART="1", STNODEFAULTFOLDER="1")
        return env

    def configure(self, peer):
        tree = ET.parse(self.config)
        root = tree.getroot()

        gui = root.find("gui")
        gui.set("enabled", "true")
        gui.set("tls", "false")
        set_text(gui, "address", f"127.0.0.1:{self.gui_port}")
        set_text(gui, "apikey", self.apikey)

        opts = root.find("options")
        for tag in ["listenAddress"] + OFFLINE_EMPTIED:
            for el in opts.findall(tag):
                opts.remove(el)
        ET.SubElement(opts, "listenAddress").text = f"tcp://127.0.0.1:{self.port}"
        for tag in OFFLINE_EMPTIED:
            ET.SubElement(opts, tag).text = ""
        for tag, value in OFFLINE_OPTIONS:
            set_text(opts, tag, value)

        me = root.find("device")
        me.set("name", self.name)
        for el in me.findall("address"):
            me.remove(el)
        ET.SubElement(me, "address").text = f"tcp://127.0.0.1:{self.port}"

        defaults = root.find("defaults")
        other = _clone(defaults.find("device"))
        other.set("id", peer.device_id)
        other.set("name", peer.name)
        for el in other.findall("address"):
            other.remove(el)
        other.insert(0, _el("address", f"tcp://127.0.0.1:{peer.port}"))
        # Devices and folders go before <gui>, as Syncthing writes them.
        at = list(root).index(gui)
        root.insert(at, other)

        folder = _clone(defaults.find("folder"))
        folder.set("id", FOLDER_ID)
        folder.set("label", FOLDER_ID)
        folder.set("path", self.folder_path)
        folder.set("type", self.folder_type)
        # No inotify watcher: the sender's initial scan and the receiver's
        # pull are what is measured. Everything else (fsync included) is
        # Syncthing's default.
        folder.set("fsWatcherEnabled", "false")
        for el in folder.findall("device"):
            folder.remove(el)
        for i, dev in enumerate([self.device_id, peer.device_id]):
            d = ET.Element("device", {"id": dev, "introducedBy": ""})
            d.append(_el("encryptionPassword", ""))
            folder.insert(i, d)
        root.insert(0, folder)
        tree.write(self.config)

    def start(self):
        os.makedirs(os.path.join(self.folder_path, ".stfolder"), exist_ok=True)
        out = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            ["syncthing", "serve", f"--home={self.home}", "--no-browser",
             "--no-restart", "--no-upgrade", "--logflags=3"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env(), start_new_session=True)
        with open(self.pidfile, "a") as f:  # its process group, for the trap
            f.write(f"{self.proc.pid}\n")
        return time.monotonic()

    def pids(self):
        """Every process of this instance: it runs in a process group of
        its own (Syncthing's monitor process and the syncthing it starts)."""
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == self.proc.pid:
                out.append(pid)
        return out

    def api(self, path, method="GET", timeout=10):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.gui_port}{path}", method=method,
            headers={"X-API-Key": self.apikey})
        with HTTP.open(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body.strip() else None

    def alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"syncthing {self.name} exited ({self.proc.returncode});"
                               f" see {self.logfile}:\n{tail(self.logfile)}")

    def wait_api(self, deadline=60):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            self.alive()
            try:
                self.api("/rest/system/ping", timeout=2)
                return time.monotonic()
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.02)
        raise RuntimeError(f"syncthing {self.name}: no REST API after {deadline} s")

    def status(self):
        return self.api(f"/rest/db/status?folder={FOLDER_ID}")

    def time_in_state(self, state):
        """Seconds the folder has spent in `state` so far, from Syncthing's
        own StateChanged events (each tells how long the state it leaves
        lasted). The default subscription is asked: it exists from the
        start, where one for a chosen event type would only begin at the
        first request."""
        events = self.api("/rest/events?since=0&timeout=1")
        durations = [e["data"].get("duration", 0) for e in events
                     if e["type"] == "StateChanged"
                     and e["data"].get("folder") == FOLDER_ID
                     and e["data"].get("from") == state]
        if not durations:
            raise RuntimeError(f"syncthing {self.name}: no event for the end of {state}")
        return sum(durations)

    def check_offline_config(self, peer):
        """What the running instance says its settings are."""
        cfg = self.api("/rest/config")
        o = cfg["options"]
        want = {
            "globalAnnounceEnabled": False, "localAnnounceEnabled": False,
            "relaysEnabled": False, "natEnabled": False,
            "announceLANAddresses": False, "crashReportingEnabled": False,
            "autoUpgradeIntervalH": 0, "urAccepted": -1,
            "stunKeepaliveStartS": 0,
            "listenAddresses": [f"tcp://127.0.0.1:{self.port}"],
        }
        bad = {k: o.get(k) for k, v in want.items() if o.get(k) != v}
        if o.get("globalAnnounceServers") not in ([], None, [""]):
            bad["globalAnnounceServers"] = o.get("globalAnnounceServers")
        if cfg["gui"]["address"] != f"127.0.0.1:{self.gui_port}":
            bad["gui.address"] = cfg["gui"]["address"]
        for d in cfg["devices"]:
            if d["deviceID"] == peer.device_id and d["addresses"] != [f"tcp://127.0.0.1:{peer.port}"]:
                bad["peer.addresses"] = d["addresses"]
        if bad:
            raise RuntimeError(f"syncthing {self.name}: settings not in force: {bad}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.api("/rest/system/shutdown", method="POST", timeout=5)
            self.proc.wait(timeout=20)
        except Exception:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _clone(el):
    return ET.fromstring(ET.tostring(el))


def _el(tag, text):
    e = ET.Element(tag)
    e.text = text
    return e


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------- nothing leaves 127.0.0.1

def _inet_sockets():
    """inode -> (proto, local ip, local port, remote ip, remote port)."""
    table = {}
    for proto in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        try:
            with open(f"/proc/net/{proto}") as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            p = row.split()
            (lip, lport), (rip, rport) = (_addr(p[1]), _addr(p[2]))
            table[p[9]] = (proto, lip, lport, rip, rport)
    return table


def _addr(hexaddr):
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    # /proc/net prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw), int(port, 16)


def _loopback(ip):
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def check_sockets(procs):
    """Every IP socket of every Syncthing process is bound to a loopback
    address, and any peer it has is a loopback address."""
    table = _inet_sockets()
    seen = 0
    for st, pid in ((st, pid) for st in procs for pid in st.pids()):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", link)
            if not m or m.group(1) not in table:
                continue  # unix and netlink sockets: not IP
            seen += 1
            proto, lip, lport, rip, rport = table[m.group(1)]
            ok = _loopback(lip) and (_loopback(rip) or rip.is_unspecified)
            if not ok:
                raise RuntimeError(
                    f"syncthing {st.name} (pid {pid}) has a {proto} socket "
                    f"{lip}:{lport} -> {rip}:{rport}: not loopback only")
    return seen


# --------------------------------------------------------------- the cases

def syncthing_run(work, src, expect_files, expect_bytes, label):
    """Sender `src` (sendonly) → receiver (receiveonly), in homes under
    `work` that are removed afterwards. Returns timings."""
    pidfile = PIDFILE
    dst = os.path.join(work, "received")
    sender = Syncthing("sender", work, src, "sendonly", pidfile)
    receiver = Syncthing("receiver", work, dst, "receiveonly", pidfile)
    sender.configure(receiver)
    receiver.configure(sender)
    procs = [sender, receiver]
    try:
        # The sender: start, scan (hash) the folder. Not timed.
        t_launch = sender.start()
        t_api = sender.wait_api()
        sender.check_offline_config(receiver)
        while True:
            sender.alive()
            s = sender.status()
            # (localBytes counts each directory as 128 bytes too.)
            if (s["state"] == "idle" and s["localFiles"] == expect_files
                    and s["localBytes"] >= expect_bytes):
                break
            time.sleep(0.05)
        t_scanned = time.monotonic()
        global_bytes = s["localBytes"]
        scanning = sender.time_in_state("scanning")
        check_sockets([sender])
        log(f"{label}: sender started and scanned in {t_scanned - t_launch:.2f} s "
            f"(scanning: {scanning:.2f} s)")

        # The receiver: timed from its start, and from the connection. The
        # disk first writes back what is still dirty (the data just made,
        # an earlier case), as before files_bench.
        os.sync()
        t0 = receiver.start()
        receiver.wait_api()
        receiver.check_offline_config(sender)
        while True:
            receiver.alive()
            c = receiver.api("/rest/system/connections")["connections"]
            if c.get(sender.device_id, {}).get("connected"):
                break
            time.sleep(0.01)
        t_conn = time.monotonic()
        check_sockets(procs)
        polls = 0
        while True:
            receiver.alive()
            s = receiver.status()
            polls += 1
            if (s["globalFiles"] == expect_files and s["localFiles"] == expect_files
                    and s["localBytes"] == global_bytes and s["needFiles"] == 0
                    and s["needBytes"] == 0 and s["state"] == "idle"):
                break
            time.sleep(0.05)
        t_done = time.monotonic()
        sockets = check_sockets(procs)
        log(f"{label}: receiver in sync {t_done - t_conn:.2f} s after connecting "
            f"({t_done - t0:.2f} s after its start; {polls} polls; "
            f"{sockets} IP sockets, all on 127.0.0.1)")
    finally:
        for st in procs:
            st.stop()

    # The bytes on the receiver's disk are the sender's.
    if os.path.isfile(os.path.join(src, "source.bin")):
        subprocess.run(["cmp", os.path.join(src, "source.bin"),
                        os.path.join(dst, "source.bin")], check=True)
    subprocess.run(["diff", "-rq", "-x", ".stfolder", src, dst], check=True)
    for d in (dst, sender.home, receiver.home):
        shutil.rmtree(d)
    return {
        "start_scan": t_scanned - t_launch,
        "scan": scanning,
        "from_start": t_done - t0,
        "from_connected": t_done - t_conn,
    }


def files_bench(binary, args, label):
    log(f"{label}: files_bench {' '.join(args)}")
    os.sync()
    # Its scratch data under ours (the same file system), so that the
    # caller's cleanup removes it even if files_bench is killed; its own
    # process group, listed for the trap like Syncthing's.
    tmp = os.path.join(os.path.dirname(PIDFILE), "files_bench.tmp")
    os.makedirs(tmp, exist_ok=True)
    r = subprocess.Popen([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, TMPDIR=tmp),
                         start_new_session=True)
    with open(PIDFILE, "a") as f:
        f.write(f"{r.pid}\n")
    r.stdout, r.stderr = r.communicate()
    if r.returncode != 0:
        raise RuntimeError(f"files_bench failed:\n{r.stdout}\n{r.stderr}")
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].endswith(" s"):
            rows[cells[0]] = float(cells[1][:-2])
    return rows, r.stdout


def pick(rows, prefix):
    hits = [v for k, v in rows.items() if k.startswith(prefix)]
    if len(hits) != 1:
        raise RuntimeError(f"files_bench: no single row '{prefix}…' in {list(rows)}")
    return hits[0]


def median(runs):
    """Each measure's median over the runs."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def table(title, size, lines, ceiling):
    mb = lambda t: size / t / 1e6
    out = [f"### {title}", "", "| timed | time | MB/s | vs plain TCP copy |",
           "|---|---|---|---|"]
    for what, t in lines:
        out.append(f"| {what} | {t:.2f} s | {mb(t):.0f} | {mb(t) / mb(ceiling):.2f} |")
    return out


def footer(runs, m, size, syncthing_key, mw_what):
    """The ratio, each run's ratio if more than one, and what was not timed."""
    mb = lambda t: size / t / 1e6
    out = ["", f"**Meshwork ÷ Syncthing: {m[syncthing_key] / m['mw_get']:.2f}×** "
               "(MB/s of Meshwork's get ÷ MB/s of Syncthing's receiver connected → in sync)"]
    if len(runs) > 1:
        out += ["", f"{len(runs)} runs, each Syncthing then files_bench; the table shows "
                    "medians. Per run, Meshwork ÷ Syncthing: "
                + ", ".join(f"{r[syncthing_key] / r['mw_get']:.2f}×" for r in runs)
                + "; plain TCP copy: " + ", ".join(f"{r['ceiling']:.2f} s" for r in runs) + "."]
    out += ["", f"Not timed: Syncthing's sender scan (SHA-256 of every block) "
                f"{m['st_scan']:.2f} s ({mb(m['st_scan']):.0f} MB/s; {m['st_start_scan']:.2f} s "
                f"with its start); Meshwork's share ({mw_what}) {m['mw_share']:.2f} s "
                f"({mb(m['mw_share']):.0f} MB/s)."]
    return out


def case_file(args, work, version):
    size = args.mib * 2**20
    src = os.path.join(work, "src")
    os.makedirs(src)
    write_xorshift_file(os.path.join(src, "source.bin"), size, work)
    runs, raws = [], []
    for i in range(args.runs):
        label = f"file {args.mib} MiB, run {i + 1}/{args.runs}"
        st = syncthing_run(work, src, 1, size, label)
        rows, raw = files_bench(args.files_bench, ["--mib", str(args.mib), "--two-nodes"], label)
        raws.append(raw)
        runs.append({
            "ceiling": pick(rows, "plain TCP copy"),
            "st_conn": st["from_connected"], "st_start": st["from_start"],
            "st_scan": st["scan"], "st_start_scan": st["start_scan"],
            "mw_get": pick(rows, "get from one holder"),
            "mw_transfer": pick(rows, "transfer from one holder"),
            "mw_share": pick(rows, "share"),
        })
    shutil.rmtree(src)
    m = median(runs)
    out = table(
        f"One file of {args.mib} MiB ({size:,} bytes) to a second instance on 127.0.0.1"
        f" (Syncthing {version})",
        size,
        [("plain TCP copy: file → socket → file + fsync (ceiling, files_bench)", m["ceiling"]),
         ("Syncthing: receiver connected → in sync, file on disk", m["st_conn"]),
         ("Syncthing: receiver started → in sync (+ its start, TLS, index)", m["st_start"]),
         ("Meshwork: get (transfer + decrypt, write, fsync, rename)", m["mw_get"]),
         ("Meshwork: transfer alone (every piece verified, in the blob store)", m["mw_transfer"])],
        m["ceiling"])
    out += footer(runs, m, size, "st_conn", "encrypt + hash + write the blob")
    return out, raws


def case_folder(args, work, version):
    n = args.files
    size = n * FILE_SIZE
    srcs = {}
    for distinct in (True, False):
        srcs[distinct] = os.path.join(work, "distinct" if distinct else "files_bench")
        os.makedirs(srcs[distinct])
        write_folder(srcs[distinct], n, distinct)
    runs, raws = [], []
    for i in range(args.runs):
        label = f"folder {n} files, run {i + 1}/{args.runs}"
        st = syncthing_run(work, srcs[True], n, size, label + ", distinct bytes")
        same = syncthing_run(work, srcs[False], n, size, label + ", files_bench's bytes")
        rows, raw = files_bench(args.files_bench, ["--folder", str(n)], label)
        raws.append(raw)
        runs.append({
            "ceiling": pick(rows, "plain TCP copy of the tree"),
            "st_conn": st["from_connected"], "st_start": st["from_start"],
            "st_scan": st["scan"], "st_start_scan": st["start_scan"],
            "st_same_conn": same["from_connected"],
            "mw_get": pick(rows, "get:"),
            "mw_transfer": pick(rows, "transfer:"),
            "mw_share": pick(rows, "share the folder"),
        })
    for d in srcs.values():
        shutil.rmtree(d)
    m = median(runs)
    out = table(
        f"A folder of {n:,} files × 100 KiB ({size:,} bytes) to a second instance on 127.0.0.1"
        f" (Syncthing {version})",
        size,
        [("plain TCP copy of the tree, each file written + fsynced (ceiling, files_bench)", m["ceiling"]),
         ("Syncthing: receiver connected → in sync, every file on disk", m["st_conn"]),
         ("Syncthing: receiver started → in sync (+ its start, TLS, index)", m["st_start"]),
         ("Syncthing, files_bench's bytes (every file the same 100 KiB): connected → in sync",
          m["st_same_conn"]),
         ("Meshwork: get (transfer + decrypt into the tree, sync it 16 files at a time, rename)", m["mw_get"]),
         ("Meshwork: transfer alone (every piece verified, in the blob store)", m["mw_transfer"])],
        m["ceiling"])
    out += footer(runs, m, size, "st_conn", "scan, encrypt + hash, one record")
    out += ["", f"Against files_bench's own bytes Syncthing gives "
                f"{m['st_same_conn'] / m['mw_get']:.2f}× (Meshwork ÷ Syncthing). Syncthing's other "
                "rows are for files of their own random bytes: files_bench writes every file of its "
                "folder with the same 100 KiB (its generator restarts for each file). Meshwork seals "
                "the folder as one blob under a fresh random key, each chunk's nonce its position, "
                "so repeated bytes change nothing for it; Syncthing copies a block it already has "
                "on disk instead of fetching it again."]
    return out, raws


def warm_memory():
    """Touches the memory the kernel could give either tool, once, then
    frees it.

    On a VM that backs guest memory lazily (this one), a write into a page
    the guest has never touched costs ~10x one into a page it has freed:
    whichever tool happened to write into fresh pages lost seconds per GiB
    (BENCHMARKS.md, sessions 8 and 17). Real hardware has no such cost, so
    neither tool should pay it here.
    """
    import mmap
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    size = max(0, info.get("MemAvailable", 0) - (2 << 30))
    if size == 0:
        return
    t = time.monotonic()
    m = mmap.mmap(-1, size)
    for off in range(0, size, mmap.PAGESIZE):
        m[off] = 1
    m.close()
    log(f"touched {size / (1 << 30):.1f} GiB of memory once in {time.monotonic() - t:.1f} s")


def main():
    global PIDFILE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="a scratch directory, removed by the caller")
    p.add_argument("--files-bench", required=True, help="the files_bench binary")
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--only", choices=["file", "folder"])
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    PIDFILE = os.path.join(args.work, "pids")

    version = subprocess.run(["syncthing", "--version"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout.split()[1]
    warm_memory()
    report, raws = [], []
    for case, run, wanted in (("file", case_file, args.mib > 0),
                              ("folder", case_folder, args.files > 0)):
        if args.only in (None, case) and wanted:
            work = os.path.join(args.work, case)
            os.makedirs(work)
            out, raw = run(args, work, version)
            report += out + [""]
            raws += raw
    print("\n".join(report))
    print("<details><summary>files_bench's own output</summary>\n")
    for raw in raws:
        print(raw)
    print("</details>")


if __name__ == "__main__":
    main()
