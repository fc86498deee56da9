"""Throwaway redis-server processes for the Redis layer tests.

Each server runs from the ``redis-server`` binary on a spare 127.0.0.1 port, with
persistence off (``--save '' --appendonly no``) and its files in a temporary
directory, and is killed at teardown. A restart keeps the port, so clients see
the same address come back (empty, as after a crash without persistence).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import redis

# scripts/test installs both (Debian: redis-server, redis-tools) before the suite runs.
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def spare_port(bus_offset: int | None = None) -> int:
    """A port free on 127.0.0.1 (and, for cluster nodes, its bus port too)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if bus_offset is None:
            return port
        if port + bus_offset < 65536:
            with socket.socket() as bus, contextlib.suppress(OSError):
                bus.bind(("127.0.0.1", port + bus_offset))
                return port
    raise RuntimeError("no spare port pair found")


class RedisServer:
    """One redis-server process; ``kill()`` and ``start()`` simulate a crash and restart."""

    def __init__(self, directory: Path, extra_args: Sequence[str] = (), cluster: bool = False):
        self.directory = directory
        self.cluster = cluster
        self.port = spare_port(10000 if cluster else None)
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            str(REDIS_SERVER),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            f"redis-{self.port}.log",
        ]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf"]
        return args + self.extra_args

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, timeout: float = 10.0) -> None:
        def answers() -> bool:
            try:
                with self.client() as client:
                    return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout, f"redis-server on port {self.port}")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed, connections reset."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def running(servers: Sequence[RedisServer]) -> Iterator[None]:
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in servers:
            server.kill()


@contextlib.contextmanager
def redis_servers(directory: Path, count: int) -> Iterator[list[RedisServer]]:
    servers = [RedisServer(directory) for _ in range(count)]
    with running(servers):
        yield servers


@contextlib.contextmanager
def redis_cluster(directory: Path, masters: int = 3) -> Iterator[list[RedisServer]]:
    """A real Redis Cluster of ``masters`` primaries, no replicas, all slots covered."""
    nodes = [RedisServer(directory, cluster=True) for _ in range(masters)]
    with running(nodes):
        subprocess.run(
            [str(REDIS_CLI), "--cluster", "create"]
            + [f"127.0.0.1:{node.port}" for node in nodes]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=30,
        )
        for node in nodes:
            with node.client() as client:
                wait_until(
                    functools.partial(cluster_is_ok, client), 15, "the test cluster to become ready"
                )
        yield nodes


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, written as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("gateway test CA"))
        .issuer_name(name("gateway test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "redis.pem",
        "key": directory / "redis.key",
    }
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class TLSRedisServer(RedisServer):
    """A redis-server that speaks only TLS (``rediss://``), on ``self.port``."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.tls = make_tls_files(directory)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--port") + 1] = "0"
        tls = ["--tls-port", str(self.port), "--tls-auth-clients", "no"]
        tls += ["--tls-cert-file", str(self.tls["cert"]), "--tls-key-file", str(self.tls["key"])]
        return [*args, *tls, "--tls-ca-cert-file", str(self.tls["ca"])]

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port, socket_timeout=5, ssl=True, ssl_ca_certs=str(self.tls["ca"])
        )


class SentinelServer(RedisServer):
    """A Redis Sentinel watching one master as ``master_name`` (quorum 1, fast timeouts)."""

    def __init__(self, directory: Path, master: RedisServer, master_name: str) -> None:
        super().__init__(directory)
        self.config = directory / f"sentinel-{self.port}.conf"
        self.config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {directory}\n"
            f"sentinel monitor {master_name} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {master_name} 500\n"
            f"sentinel failover-timeout {master_name} 5000\n"
        )

    def command(self) -> list[str]:
        return [str(REDIS_SERVER), str(self.config), "--sentinel"]


@contextlib.contextmanager
def sentinel_group(
    directory: Path, master_name: str, timeout: float = 10.0
) -> Iterator[tuple[RedisServer, RedisServer, SentinelServer]]:
    """A master, its synced replica and a Sentinel watching them as ``master_name``."""
    master = RedisServer(directory, ["--repl-diskless-sync-delay", "0"])
    replica = RedisServer(directory)
    replica.extra_args = ["--replicaof", "127.0.0.1", str(master.port)]
    sentinel = SentinelServer(directory, master, master_name)
    with running([master, replica, sentinel]):
        with replica.client() as client:
            wait_until(
                lambda: client.info("replication").get("master_link_status") == "up",
                timeout,
                "the replica to sync",
            )
        yield master, replica, sentinel


def wait_for_promotion(replica: RedisServer, timeout: float) -> None:
    """Wait until Sentinel has promoted ``replica`` (its master is gone)."""
    with replica.client() as client:
        wait_until(
            lambda: client.info("replication").get("role") == "master",
            timeout,
            "Sentinel to promote the replica",
        )


def cluster_is_ok(client: redis.Redis) -> bool:
    return bool(client.cluster("info").get("cluster_state") == "ok")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
