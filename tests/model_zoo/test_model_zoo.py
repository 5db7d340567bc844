"""Model zoo: catalog, verified cached downloads (against a local HTTP server), importers, publishing."""

import collections
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import torchvision
import yaml

from ssl_lab import model_zoo
from ssl_lab.model_zoo import ModelZooError, UnknownModelError, import_backbone_state_dict, load_backbone_weights
from ssl_lab.modeling.backbones import ResNet
from ssl_lab.utils.file_io import PathManager
from ssl_lab.utils.model_catalog import PROJECT_ROOT


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(PROJECT_ROOT, "tools", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CHUNK = 1 << 16


class _Server:
    """HTTP server on 127.0.0.1 (ephemeral port) serving in-memory files and counting GETs."""

    def __init__(self):
        self.files, self.truncated, self.delay = {}, set(), 0.0
        self.gets = collections.Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.gets[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                extra = 1000 if self.path in server.truncated else 0  # promise more than is sent
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                for i in range(0, len(body), _CHUNK):
                    self.wfile.write(body[i : i + _CHUNK])
                    time.sleep(server.delay)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


class _Zoo:
    """A test catalog ($SSL_LAB_MODEL_ZOO_CATALOG) whose entries the local server publishes."""

    def __init__(self, tmp_path, server):
        self.server, self.catalog_path, self.cache = server, str(tmp_path / "catalog.yaml"), tmp_path / "cache"
        self.entries = {}

    def add(self, name, body, path=None, **fields):
        """Serve `body` at `path` and list it as `name`; `fields` override the entry (default: its sha256)."""
        path = path or f"/zoo/{name}.pth"
        self.server.files[path] = body
        entry = {"config": "configs/Shapes/mocov2_r18.yaml", "url": self.server.url(path), "format": "ssl_lab"}
        if not any(k.startswith(("sha256", "md5")) for k in fields):
            entry["sha256"] = hashlib.sha256(body).hexdigest()
        entry.update(fields)
        self.entries[name] = entry
        with open(self.catalog_path, "w") as f:
            yaml.safe_dump(self.entries, f)
        return entry

    def cached_files(self):
        """Files in the cache other than lock files."""
        return sorted(str(p.relative_to(self.cache)) for p in self.cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.stop()


@pytest.fixture
def zoo(tmp_path, monkeypatch, server):
    z = _Zoo(tmp_path, server)
    monkeypatch.setenv("SSL_LAB_CACHE", str(z.cache))
    monkeypatch.setenv("SSL_LAB_MODEL_ZOO_CATALOG", z.catalog_path)
    monkeypatch.delenv("SSL_LAB_MODEL_ZOO_URL", raising=False)
    return z


def _r18_state():
    torch.manual_seed(0)
    return ResNet(18).state_dict()


def _ssl_lab_checkpoint_bytes(backbone_state):
    model = {f"backbone.{k}": v for k, v in backbone_state.items()}
    model.update({f"momentum_backbone.{k}": v + 1 for k, v in backbone_state.items() if v.is_floating_point()})
    buffer = io.BytesIO()
    torch.save({"model": model, "iteration": 10}, buffer)
    return buffer.getvalue()


def _assert_backbone_equal(backbone, state):
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state[key]), key


# ----------------------------------------------------------------------------- downloads


def test_download_get_and_offline_cache(zoo, server):
    state = _r18_state()
    body = _ssl_lab_checkpoint_bytes(state)
    zoo.add("toy", body)

    local = PathManager.get_local_path("ssl_lab://toy")
    assert local == str(zoo.cache / "127.0.0.1_{}".format(server.httpd.server_port) / "zoo" / "toy.pth")
    with open(local, "rb") as f:
        assert f.read() == body
    model = model_zoo.get("toy")
    _assert_backbone_equal(model.backbone, state)

    server.stop()  # everything below must come from the cache
    assert PathManager.get_local_path("ssl_lab://toy") == local
    assert PathManager.get_local_path(zoo.entries["toy"]["url"]) == local  # catalog URL, same file
    _assert_backbone_equal(model_zoo.get("toy").backbone, state)
    assert server.gets == {"/zoo/toy.pth": 1}
    assert zoo.cached_files() == [os.path.relpath(local, zoo.cache)]


def test_get_config_and_checkpoint_url(zoo):
    entry = zoo.add("toy", b"x", opts=["MODEL.BACKBONE.WIDTH_MULTIPLIER", 2])
    assert model_zoo.get_checkpoint_url("toy") == entry["url"]
    assert model_zoo.get_config_file("toy") == os.path.join(PROJECT_ROOT, "configs/Shapes/mocov2_r18.yaml")
    cfg = model_zoo.get_config("toy", trained=True)
    assert cfg.MODEL.WEIGHTS == "ssl_lab://toy"
    assert cfg.MODEL.BACKBONE.DEPTH == 18 and cfg.MODEL.BACKBONE.WIDTH_MULTIPLIER == 2


def test_checksum_mismatch_leaves_nothing(zoo, server):
    zoo.add("bad", b"some bytes", sha256="0" * 64)
    zoo.add("bad_prefix", b"other bytes", sha256_prefix="deadbeef")
    for name, expected in [("bad", "0" * 64), ("bad_prefix", "sha256 prefix deadbeef")]:
        with pytest.raises(ModelZooError, match=f"Checksum mismatch for {zoo.entries[name]['url']}") as e:
            PathManager.get_local_path(f"ssl_lab://{name}")
        assert expected in str(e.value)
    assert zoo.cached_files() == []


def test_a_digest_differing_only_after_its_first_8_hex_digits_is_refused(zoo, server):
    body = b"weights of a published model"
    real = hashlib.sha256(body).hexdigest()

    def flip(digit):
        return "0" if digit != "0" else "1"

    for name, digest in [("ninth", real[:8] + flip(real[8]) + real[9:]), ("last", real[:-1] + flip(real[-1]))]:
        zoo.add(name, body, sha256=digest)
        with pytest.raises(ModelZooError, match=f"Checksum mismatch .*expected sha256 {digest}"):
            PathManager.get_local_path(f"ssl_lab://{name}")
    assert zoo.cached_files() == []
    zoo.add("exact", body)
    assert open(PathManager.get_local_path("ssl_lab://exact"), "rb").read() == body


def test_corrupted_cache_is_downloaded_again(zoo, server):
    body = os.urandom(1000)
    zoo.add("toy", body)
    local = PathManager.get_local_path("ssl_lab://toy")
    with open(local, "r+b") as f:
        f.write(b"garbage")
    assert PathManager.get_local_path("ssl_lab://toy") == local
    with open(local, "rb") as f:
        assert f.read() == body
    assert server.gets == {"/zoo/toy.pth": 2}


def test_truncated_transfer_leaves_nothing(zoo, server):
    zoo.add("cut", os.urandom(200_000))
    server.truncated.add("/zoo/cut.pth")
    with pytest.raises(ModelZooError, match=r"Truncated download .*cut\.pth: received 200000 of 201000 bytes"):
        PathManager.get_local_path("ssl_lab://cut")
    assert zoo.cached_files() == []


def test_http_error_and_unsupported_scheme(zoo, server):
    zoo.add("gone", b"x")
    del server.files["/zoo/gone.pth"]
    zoo.add("ftp", b"x", url="ftp://example.org/ftp.pth")
    with pytest.raises(ModelZooError, match=r"Download of http://127\.0\.0\.1:\d+/zoo/gone\.pth failed: HTTP 404"):
        PathManager.get_local_path("ssl_lab://gone")
    with pytest.raises(ModelZooError, match="unsupported URL scheme 'ftp'"):
        PathManager.get_local_path("ssl_lab://ftp")
    assert zoo.cached_files() == []


def test_mirror_file_urls_and_uncatalogued_urls(zoo, server, tmp_path, monkeypatch):
    body = os.urandom(1000)
    zoo.add("mirrored", body, url="https://zoo.invalid/releases/v1/mirrored.pth")
    server.files["/mirror/releases/v1/mirrored.pth"] = body
    monkeypatch.setenv("SSL_LAB_MODEL_ZOO_URL", server.url("/mirror/"))
    local = PathManager.get_local_path("ssl_lab://mirrored")
    assert local == str(zoo.cache / "zoo.invalid" / "releases" / "v1" / "mirrored.pth")
    assert server.gets == {"/mirror/releases/v1/mirrored.pth": 1}

    (tmp_path / "mirror_dir" / "releases" / "v1").mkdir(parents=True)
    (tmp_path / "mirror_dir" / "releases" / "v1" / "other.pth").write_bytes(b"local mirror")
    zoo.add("other", b"local mirror", url="https://zoo.invalid/releases/v1/other.pth")
    monkeypatch.setenv("SSL_LAB_MODEL_ZOO_URL", f"file://{tmp_path / 'mirror_dir'}")
    with open(PathManager.get_local_path("ssl_lab://other"), "rb") as f:
        assert f.read() == b"local mirror"

    server.files["/raw.bin"] = b"raw"  # not in the catalog: cached, checked for completeness only
    with PathManager.open(server.url("/raw.bin"), "rb") as f:
        assert f.read() == b"raw"


def test_importing_file_io_alone_opens_ssl_lab_and_http_paths(zoo, server):
    """The handlers belong to the PathManager: a fresh interpreter that imports only ssl_lab.utils.file_io
    (as the checkpoint readers do) resolves `ssl_lab://<name>` and a URL to their downloaded bytes."""
    body = os.urandom(1000)
    zoo.add("alone", body)
    server.files["/alone.bin"] = b"raw"
    script = (
        "import sys; from ssl_lab.utils.file_io import PathManager; "
        "assert not [m for m in sys.modules if m.startswith('ssl_lab.model_zoo')]; "
        f"print(PathManager.get_local_path('ssl_lab://alone')); print(PathManager.get_local_path({server.url('/alone.bin')!r}))"
    )
    local_zoo, local_url = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=os.environ.copy()
    ).stdout.split()
    with open(local_zoo, "rb") as f, open(local_url, "rb") as g:
        assert f.read() == body and g.read() == b"raw"


@pytest.mark.slow
def test_parallel_processes_download_once(zoo, server):
    body = os.urandom(1 << 21)
    zoo.add("shared", body)
    server.delay = 0.03  # ~1 s transfer, so the second process arrives mid-download
    script = (
        "import sys; import ssl_lab.model_zoo; from ssl_lab.utils.file_io import PathManager; "
        "print('ready', flush=True); sys.stdin.readline(); print(PathManager.get_local_path('ssl_lab://shared'), flush=True)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    paths = {out.strip() for out, _ in outputs}
    assert len(paths) == 1
    with open(paths.pop(), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(body).hexdigest()
    assert server.gets == {"/zoo/shared.pth": 1}
    assert zoo.cached_files() == ["127.0.0.1_{}/zoo/shared.pth".format(server.httpd.server_port)]


# ----------------------------------------------------------------------------- catalog


def test_unknown_name_lists_close_names(monkeypatch):
    monkeypatch.delenv("SSL_LAB_MODEL_ZOO_CATALOG", raising=False)
    with pytest.raises(KeyError, match="Did you mean: moco_v2_200ep") as e:
        model_zoo.get_config_file("moco_v2_20ep")
    assert isinstance(e.value, UnknownModelError)
    with pytest.raises(UnknownModelError, match="'mocov2_800ep' is not in the model zoo.*moco_v2_800ep"):
        PathManager.get_local_path("ssl_lab://mocov2_800ep")


def test_catalog_entries_are_consistent(monkeypatch):
    monkeypatch.delenv("SSL_LAB_MODEL_ZOO_CATALOG", raising=False)
    catalog = model_zoo.load_catalog()
    assert {"moco_v1_200ep", "moco_v2_200ep", "moco_v2_800ep", "torchvision_resnet50"} <= set(catalog)
    for entry in catalog.values():
        assert os.path.isfile(entry.config_file), entry.name
        if entry.format == "torchvision":  # torchvision names files <name>-<sha256 prefix>.pth
            assert entry.url.endswith(f"-{entry.checksum.value}.pth") and entry.checksum.algorithm == "sha256"


def test_model_zoo_md_is_up_to_date():
    with open(os.path.join(PROJECT_ROOT, "model_zoo", "MODEL_ZOO.md")) as f:
        assert f.read() == _load_tool("gen_model_zoo_md").render(), "run python tools/gen_model_zoo_md.py"


# ----------------------------------------------------------------------------- importers


def _moco_checkpoint(state):
    q = {f"module.encoder_q.{k}": v for k, v in state.items()}
    k = {f"module.encoder_k.{k}": v + 1 for k, v in state.items()}
    heads = {
        "module.encoder_q.fc.0.weight": torch.zeros(2048, 512),
        "module.encoder_q.fc.2.weight": torch.zeros(128, 2048),
        "module.queue": torch.zeros(128, 16),
        "module.queue_ptr": torch.zeros(1, dtype=torch.long),
    }
    return {"epoch": 200, "arch": "resnet18", "state_dict": {**k, **q, **heads}, "optimizer": {"state": {}}}


def test_import_official_moco_checkpoint():
    state = _r18_state()
    for fmt in (None, "moco"):
        converted, report = import_backbone_state_dict(_moco_checkpoint(state), ResNet(18).state_dict(), fmt)
        assert report.prefix == "module.encoder_q."
        assert set(converted) == set(state) and all(torch.equal(converted[k], state[k]) for k in state)
        assert report.missing == report.unexpected == report.mismatched == []
        assert report.dropped == len(state) + 4
    with pytest.raises(ValueError, match="not in 'torchvision' format"):
        import_backbone_state_dict(_moco_checkpoint(state), ResNet(18).state_dict(), "torchvision")


def test_import_torchvision_resnet_and_load(tmp_path):
    torch.manual_seed(1)
    state = torchvision.models.resnet18().state_dict()
    path = str(tmp_path / "resnet18-00000000.pth")
    torch.save(state, path)
    backbone = ResNet(18)
    report = load_backbone_weights(backbone, path, "torchvision")
    assert report.prefix == "" and report.dropped == 2  # fc.weight, fc.bias
    _assert_backbone_equal(backbone, state)
    with pytest.raises(ValueError, match="do not fit the backbone"):  # 2x wider: every conv mismatches
        load_backbone_weights(ResNet(18, width=2), path)


@pytest.mark.parametrize(
    "prefix,decoy",
    [
        ("module.", None),
        ("encoder_q.", "encoder_k."),
        ("backbone.", "momentum_backbone."),
        ("online_network.", "target_network."),
        ("model.", None),
        ("encoder.", None),
        ("student.backbone.", "teacher.backbone."),
    ],
)
def test_import_detects_prefix(prefix, decoy):
    state = _r18_state()
    sd = {prefix + k: v for k, v in state.items()}
    sd[prefix + "fc.weight"] = torch.zeros(10, 512)
    if decoy:
        sd.update({decoy + k: v + 1 for k, v in state.items()})
    converted, report = import_backbone_state_dict({"state_dict": sd}, ResNet(18).state_dict())
    assert report.prefix == prefix
    assert all(torch.equal(converted[k], state[k]) for k in state) and not report.missing


def test_import_rejects_non_resnet():
    with pytest.raises(ValueError, match="no ResNet weights"):
        import_backbone_state_dict({"model": {"linear.weight": torch.zeros(2, 2)}}, ResNet(18).state_dict())


# ----------------------------------------------------------------------------- publishing


def test_publish_model_round_trip(zoo, tmp_path, capsys):
    state = _r18_state()
    model = {f"backbone.{k}": v for k, v in state.items()}
    model.update({f"momentum_backbone.{k}": v for k, v in state.items()})
    # A one-Linear projector and its momentum copy (MoCo v1's heads) are linear, yet pretraining-only.
    model.update(
        {
            "projector.weight": torch.zeros(4, 512),
            "projector.bias": torch.zeros(4),
            "momentum_projector.weight": torch.zeros(4, 512),
            "momentum_projector.bias": torch.zeros(4),
            "queue.queue": torch.zeros(4, 8),
            "linear.weight": torch.ones(10, 512),
            "linear.bias": torch.ones(10),
        }
    )
    ckpt = tmp_path / "model_final.pth"
    torch.save({"model": model, "optimizer": {"state": {}}, "scheduler": {"last_epoch": 3}, "iteration": 3}, ckpt)

    assert (
        _load_tool("publish_model").main(
            [str(ckpt), "--output-dir", str(tmp_path / "pub"), "--name", "mine", "--config-file", "configs/Shapes/mocov2_r18.yaml"]
        )
        == 0
    )
    entry = yaml.safe_load(capsys.readouterr().out)["mine"]
    (published,) = os.listdir(tmp_path / "pub")
    with open(tmp_path / "pub" / published, "rb") as f:
        body = f.read()
    assert published == f"mine-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["size"] == len(body)
    saved = torch.load(io.BytesIO(body), weights_only=True)
    assert set(saved) == {"model"}
    assert set(saved["model"]) == {f"backbone.{k}" for k in state} | {"linear.weight", "linear.bias"}

    # The printed entry, served by the test server, resolves and loads like any catalog entry.
    zoo.add("mine", body, **{k: v for k, v in entry.items() if k != "url"})
    _assert_backbone_equal(model_zoo.get("mine").backbone, state)
