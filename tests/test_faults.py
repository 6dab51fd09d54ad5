"""Faults while writing: a process killed at random points, a full disk, a read-only folder, bad
downloads and refused reruns. After each, a target holds its intact old file or a complete new
one, a picture and its sidecar agree or the sidecar is missing, and the user reads one line."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers.http_server import PAYLOAD, FileServer, serve

from paramviz import backbones, outputs, paths
from paramviz.errors import UserError
from paramviz.experiments import runner
from paramviz.io import read_image, save_png
from paramviz.weights import registry
from paramviz.weights.download import fetch

REPO = Path(__file__).resolve().parents[1]
SPEC = "conv4k3s1p1,relu,maxpool2,conv8k3s1p1,relu"


def paramviz_argv(*args) -> list[str]:
    return [sys.executable, "-m", "paramviz.cli", *map(str, args)]


def hidden_parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# ------------------------------------------------------------------------ killed while writing

WRITER = """
import itertools, sys
import numpy as np
from paramviz import backbones, outputs, render
from paramviz.backbones.store import load
folder = sys.argv[1]
net = load(folder + "/net.safetensors")
for count in itertools.count():
    version = "ab"[count % 2]
    value = 0.25 if version == "a" else 0.75
    image = np.full((1, 256, 256, 3), value, np.float32) + np.random.rand(1, 256, 256, 3) * 0.2
    result = render.RenderResult(image, {}, np.zeros(8), 0.0, {}, None, 8, "completed", 0, "", 0.0)
    outputs.save_result(result, folder + "/out.png", {"version": version})
    backbones.save(folder + "/weights.safetensors", net, version=version)
    if count == 1:
        print("ready", flush=True)
"""


def _check_targets(folder: Path) -> None:
    """Every target is complete; a sidecar present describes the picture beside it."""
    if (folder / "out.json").exists():
        record = outputs.read_result(folder / "out.png")  # sha256 of the picture agrees
        value = 0.25 if record["settings"]["version"] == "a" else 0.75
        assert abs(read_image(folder / "out.png").mean() - value - 0.1) < 0.02
    else:
        assert read_image(folder / "out.png").shape == (256, 256, 3)  # an unpaired picture
    metadata = backbones.read_metadata(folder / "weights.safetensors")
    assert metadata["version"] in ("a", "b")
    backbones.load(folder / "weights.safetensors")


def test_a_writer_killed_at_random_points_leaves_old_or_new_files(tmp_path):
    net = backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec="conv64k3,relu")
    backbones.save(tmp_path / "net.safetensors", net)
    chooser = random.Random(11)
    for _ in range(4):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == "ready"
        time.sleep(chooser.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        _check_targets(tmp_path)
    # The next write of each target removes what the killed writers left behind.
    outputs.save_result(_fake_result(0.5), tmp_path / "out.png", {"version": "c"})
    backbones.save(tmp_path / "weights.safetensors", net)
    assert hidden_parts(tmp_path) == []
    assert outputs.read_result(tmp_path / "out.png")["settings"] == {"version": "c"}


def test_stale_parts_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "x[1].png"
    dead = tmp_path / ".x[1].png.999999999-abc.part"
    live = tmp_path / f".x[1].png.{os.getppid()}-def.part"
    other = tmp_path / ".y.png.999999999-abc.part"
    for path in (dead, live, other):
        path.write_bytes(b"half a file")
    save_png(target, np.zeros((2, 2, 3)))
    assert hidden_parts(tmp_path) == sorted([live.name, other.name])


def test_the_sidecar_is_renamed_last_and_removed_first(tmp_path, monkeypatch):
    """A rename that fails after the picture (as a kill would) leaves the new picture alone, the
    old sidecar gone: the result reads as incomplete, never as a mismatched pair."""
    result = _fake_result(0.25)
    out = tmp_path / "out.png"
    outputs.save_result(result, out, {"version": "a"})
    assert outputs.read_result(out)["settings"] == {"version": "a"}
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(UserError, match="cannot write .*out.json: Input/output error"):
        outputs.save_result(_fake_result(0.75), out, {"version": "b"})
    assert not out.with_suffix(".json").exists()
    with pytest.raises(UserError, match="has no sidecar"):
        outputs.read_result(out)
    assert hidden_parts(tmp_path) == []


def test_a_picture_changed_after_its_sidecar_is_detected(tmp_path):
    out = tmp_path / "out.png"
    outputs.save_result(_fake_result(0.25), out, {})
    save_png(out, np.ones((8, 8, 3)))
    with pytest.raises(UserError, match="does not match its sidecar out.json"):
        outputs.read_result(out)


def _fake_result(value: float):
    from paramviz.render import RenderResult

    image = np.full((1, 8, 8, 3), value, np.float32)
    return RenderResult(image, {}, np.zeros(2), 0.0, {}, None, 2, "completed", 0, "", 0.0)


# ------------------------------------------------------------------------ full and read-only disks


def _in_mount_namespace(script: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) in a private user and mount namespace, where it may mount a tmpfs
    that vanishes with it."""
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def mount_tmpfs(tmp_path_factory):
    """Skip cleanly where a tmpfs cannot be mounted (no ``unshare``, no user namespaces)."""
    probe = tmp_path_factory.mktemp("mount-probe")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: cannot mount a tmpfs")
    done = _in_mount_namespace(f"mount -t tmpfs -o size=64k tmpfs {probe} && touch {probe}/x")
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs here: {done.stderr.strip()}")
    return _in_mount_namespace


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import torch

    folder = tmp_path_factory.mktemp("inputs")
    net = backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec=SPEC)
    weights = backbones.save(folder / "w.safetensors", net)
    state = {"0.weight": torch.randn(64, 3, 3, 3), "0.bias": torch.zeros(64)}
    torch.save(state, folder / "big.pth")
    picture = save_png(folder / "p.png", np.random.default_rng(0).uniform(size=(16, 16, 3)))
    return {"weights": weights, "pth": folder / "big.pth", "picture": picture, "dir": folder}


def _commands(files: dict[str, Path], out: Path) -> dict[str, list[str]]:
    render = ["--weights", files["weights"], "--size", "16", "--steps", "2", "--quiet"]
    return {
        "texture": paramviz_argv(
            "texture", "--style", files["picture"], *render, "-o", out / "t.png"
        ),
        "probe": paramviz_argv(
            "probe",
            "--weights",
            files["weights"],
            "--image",
            files["picture"],
            "--layers",
            "relu2",
            "-o",
            out / "a.npz",
        ),  # fmt: skip
        "convert": paramviz_argv(
            "weights",
            "convert",
            files["pth"],
            "--arch",
            "sequential",
            "--spec",
            "conv64k3",
            "--mean",
            "0,0,0",
            "--std",
            "1,1,1",
            "-o",
            out / "c.safetensors",
        ),  # fmt: skip
    }


def _script(mount: str, folder: Path, argv: list[str], fill: bool) -> str:
    filler = f"dd if=/dev/zero of={folder}/filler bs=1k 2>/dev/null;" if fill else ""
    command = " ".join(f"'{a}'" for a in argv)
    return f"{mount} && {filler} {command}; echo rc=$?; ls -A {folder}"


@pytest.mark.parametrize("command", ["texture", "probe", "convert"])
def test_a_full_disk_is_one_line_and_leaves_nothing(mount_tmpfs, files, tmp_path, command):
    folder = tmp_path / "disk"
    folder.mkdir()
    argv = _commands(files, folder)[command]
    done = mount_tmpfs(_script(f"mount -t tmpfs -o size=48k tmpfs {folder}", folder, argv, True))
    *lines, rc, listing = done.stdout.strip().splitlines() or [""]
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert rc == "rc=2", done.stderr
    assert len(errors) == 1 and errors[0].startswith("paramviz: error: ")
    if command == "probe":  # its output size is known beforehand: refused before the work
        assert errors[0].endswith(
            "free and this needs about 2.0 KiB: free some space or write elsewhere"
        )
    else:
        assert errors[0].startswith(f"paramviz: error: cannot write {folder}")
        assert errors[0].endswith("No space left on device (free some space)")
    assert listing == "filler"  # no half-written target, no temporary file


@pytest.mark.parametrize("command", ["texture", "probe", "convert", "experiment", "report"])
def test_a_read_only_folder_is_refused_before_any_work(mount_tmpfs, files, tmp_path, command):
    folder = tmp_path / "ro"
    folder.mkdir()
    commands = _commands(files, folder)
    commands["experiment"] = paramviz_argv(
        "experiment", "run", "neurons", "--quick", "-o", folder / "run"
    )
    commands["report"] = paramviz_argv("report", files["dir"], "-o", folder / "r.html")
    argv = commands[command]
    if command != "report":  # weights that do not exist: the output is checked before them
        argv = [a if a != str(files["weights"]) else "missing.safetensors" for a in argv]
    done = mount_tmpfs(_script(f"mount -t tmpfs -o ro tmpfs {folder}", folder, argv, False))
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.stdout.strip().splitlines()[-1] == "rc=2", done.stderr
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"paramviz: error: cannot write in {folder}")
    assert errors[0].endswith("Read-only file system")


NOBODY = 65534  # the unprivileged user a root test run drops to


def run_as(user: int | None, argv: list[str]) -> tuple[int, str]:
    """``paramviz ARGV`` in a forked child that first drops to ``user`` (None: stays), so that
    root, who may write anywhere, meets the permissions a user meets; ``(status, stderr)``.
    The child needs no new interpreter (which may live where ``user`` cannot read)."""
    from paramviz.cli import main

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read)
            sys.stderr = os.fdopen(write, "w")
            if user is not None:
                os.setgroups([])
                os.setgid(user)
                os.setuid(user)
            status = main(argv)
        finally:
            sys.stderr.flush()
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as stream:
        err = stream.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the child runs no JAX code
def test_a_folder_without_write_permission_is_refused(files, monkeypatch):
    """The probe really creates a file, so it holds for any user; under root (CI) the command
    runs as ``nobody``, in a folder under /tmp that ``nobody`` can reach."""
    user = NOBODY if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory() as shared:
        shared = Path(shared)
        shared.chmod(0o777)
        picture = Path(shutil.copy(files["picture"], shared / "style.png"))
        picture.chmod(0o644)
        folder = shared / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        monkeypatch.setenv("PARAMVIZ_HOME", str(shared / "home"))  # one the user may write
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
        argv = ["texture", "--style", str(picture), "--weights", "missing.safetensors"]
        status, err = run_as(user, [*argv, "-o", str(folder / "t.png")])
        assert status == 2, err
        assert err.strip() == f"paramviz: error: cannot write in {folder}: Permission denied"
        assert not any(folder.iterdir())


# ------------------------------------------------------------------------ downloads


def entry_for(base_url: str) -> registry.WeightsEntry:
    return dataclasses.replace(
        registry.get("resnet18"), name="tiny", url=f"{base_url}/files/tiny.pth", sha256=None
    )


@pytest.mark.parametrize("kind", ["text/html", "text/html; charset=utf-8", "application/json"])
def test_a_web_page_is_never_kept_as_the_checkpoint(tmp_path, kind):
    with serve(FileServer(content_type=kind)) as url, pytest.raises(UserError, match="page"):
        fetch(entry_for(url), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_body_without_content_length_is_deleted(tmp_path):
    state = FileServer(send_length=False, cut_after=len(PAYLOAD) // 2)
    with serve(state) as url, pytest.raises(UserError, match="not a complete checkpoint.*deleted"):
        fetch(entry_for(url), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    with serve(FileServer(send_length=False)) as url:  # the retry starts afresh and succeeds
        assert fetch(entry_for(url), tmp_path, progress=False).read_bytes() == PAYLOAD


def test_an_html_body_without_a_content_type_is_deleted(tmp_path):
    page = b"<!DOCTYPE html><html><body>Sign in to download</body></html>" * 20
    with serve(FileServer(payload=page)) as url, pytest.raises(UserError, match="HTML"):
        fetch(entry_for(url), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_cached_download_that_is_not_a_checkpoint_is_fetched_again(tmp_path, caplog):
    (tmp_path / "tiny.pth").write_bytes(b"<html>an old error page</html>")
    with serve(FileServer()) as url:
        path = fetch(entry_for(url), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert "deleted the cached tiny.pth" in caplog.text


def test_a_cached_download_that_fails_to_load_is_deleted_with_a_message(monkeypatch):
    from paramviz.weights import convert

    unreachable = "http://127.0.0.1:9/resnet18-f37072fd.pth"  # never asked: the file is cached
    entry = dataclasses.replace(registry.get("resnet18"), sha256=None, url=unreachable)
    cached = paths.downloads_dir() / entry.filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(PAYLOAD)  # a complete zip, but no PyTorch file inside
    monkeypatch.setattr(registry, "get", lambda name: entry)
    with pytest.raises(UserError, match="(?s)corrupt.*was deleted; run `paramviz weights fetch"):
        convert.convert_registered("resnet18", progress=False)
    assert not cached.exists()


# ------------------------------------------------------------------------ experiment runs


class _Experiment:
    name = "neurons"

    def __init__(self, size: int):
        self.size = size

    def settings(self, context):
        return {"size": self.size}


def test_a_settings_mismatch_is_refused_before_any_work(tmp_path, monkeypatch):
    runner.begin_run(tmp_path, "small", True, ["neurons"])

    def no_work(*args, **kwargs):
        raise AssertionError("the backbones were resolved before the check")

    monkeypatch.setattr(runner.backbone_sets, "resolve", no_work)
    with pytest.raises(UserError, match="quick=True, not False"):
        runner.run_experiments(["neurons"], tmp_path, "small", quick=False)


def test_a_refused_rerun_leaves_run_json_as_it_was(tmp_path, monkeypatch):
    runner.begin_run(tmp_path, "small", True, ["neurons"])
    runner.check_settings(tmp_path / "neurons" / "settings.json", {"size": 32})
    before = (tmp_path / "run.json").read_bytes()
    monkeypatch.setattr(runner, "select", lambda names: [_Experiment(size=64)])
    monkeypatch.setattr(runner.backbone_sets, "resolve", lambda *a: None)
    monkeypatch.setattr(runner.backbone_sets, "summary", lambda *a: "")
    with pytest.raises(UserError, match="other settings \\(changed: size\\)"):
        runner.run_experiments(["neurons"], tmp_path, "small", quick=True)
    assert (tmp_path / "run.json").read_bytes() == before
    assert json.loads((tmp_path / "neurons" / "settings.json").read_text()) == {"size": 32}


def test_a_cell_is_rewritten_record_last(tmp_path, monkeypatch):
    """A damaged record is removed before its cell's picture is written again."""
    picture, record = runner.cell_paths(tmp_path, "c1")
    record.parent.mkdir(parents=True)
    record.write_text("{ damaged")
    order = []
    monkeypatch.setattr(
        runner, "save_png", lambda path, image: order.append(("png", record.exists()))
    )
    monkeypatch.setattr(runner, "write_json", lambda path, data: order.append(("json", None)))
    cell = type("Cell", (), {"id": "c1", "group": "", "backbone": "", "prior": "", "optimizer": "",
                             "seed": 0, "spec": {}})()  # fmt: skip
    output = type("Out", (), {"picture": np.zeros((2, 2, 3)), "inputs": {}, "labels": None,
                              "metrics": {}, "details": {}})()  # fmt: skip
    experiment = type("E", (), {"name": "e", "run_cell": lambda *a: output})()
    runner.make_cell(None, experiment, {}, cell, tmp_path)
    assert order == [("png", False), ("json", None)]  # the old record was gone before the picture
