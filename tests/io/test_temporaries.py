"""Temporaries of killed writers: a later write to the same target removes
them; a live writer's temporary (it holds its lock) is never removed, nor are
another target's. Real processes: one killed (SIGKILL) while blocked inside
its write, one alive and blocked, both writing the same target."""
import os
import subprocess
import sys

import numpy as np
import helpers
import pytest

import rnnpy
from rnnpy import io

pytest.importorskip("fcntl")

ROOT = helpers.ROOT

WRITER = """
import sys
from rnnpy.io import atomic_write

def write(f):
    f.write(b"x" * (8 << 20))           # 8 MiB, then block inside the write
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()
    f.write(b"end")

atomic_write(sys.argv[1], write, suffix=sys.argv[2])
print("done", flush=True)
"""


def start_writer(path, suffix=".tmp"):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), suffix], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temporaries(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith(".rnnpy-"))


def test_a_later_save_removes_dead_writers_temporaries_only(tmp_path):
    target, other = tmp_path / "m.npz", tmp_path / "other.npz"
    rnnpy.Dense(2, 2, seed=0).save(target)
    procs = []
    try:
        live = start_writer(target)           # alive, blocked inside its write
        procs.append(live)
        live_tmp = temporaries(tmp_path)
        dead = start_writer(target)           # starts beside the live one, leaves it alone
        procs.append(dead)
        dead_tmp = sorted(set(temporaries(tmp_path)) - set(live_tmp))
        assert len(live_tmp) == 1 and len(dead_tmp) == 1 and dead_tmp[0].startswith(".rnnpy-m.npz.")
        dead.kill()
        dead.wait()
        dead_other = start_writer(other)      # another target's dead writer
        procs.append(dead_other)
        dead_other.kill()
        dead_other.wait()
        before = set(temporaries(tmp_path))
        assert len(before) == 3
        assert os.path.getsize(tmp_path / dead_tmp[0]) >= 8 << 20   # what a dead writer leaves

        m = rnnpy.Dense(2, 2, seed=1)
        m.save(target)                        # removes the dead writer's file only
        after = set(temporaries(tmp_path))
        assert after == before - set(dead_tmp)
        assert any(f.startswith(".rnnpy-other.npz.") for f in after)
        np.testing.assert_array_equal(rnnpy.load(target).flat_params, m.flat_params)

        live.stdin.write("\n")                # the live writer finishes its write
        live.stdin.flush()
        assert live.stdout.readline().strip() == "done"
        assert live.wait() == 0
        assert target.read_bytes() == b"x" * (8 << 20) + b"end"
        assert [f for f in temporaries(tmp_path) if f.startswith(".rnnpy-m.npz.")] == []
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdin.close()
            p.stdout.close()


def test_onnx_export_cleans_up_after_a_dead_exporter(tmp_path):
    pytest.importorskip("onnx")
    target = tmp_path / "m.onnx"
    dead = start_writer(target, ".onnx.tmp")
    dead.kill()
    dead.wait()
    dead.stdin.close()
    dead.stdout.close()
    assert len(temporaries(tmp_path)) == 1
    rnnpy.export_onnx(rnnpy.Dense(3, 2, seed=0), str(target))
    assert temporaries(tmp_path) == []
    assert target.stat().st_size > 0


def test_temporary_names_tie_to_their_target(tmp_path):
    """Cleaning m.npz looks only at .rnnpy-m.npz.<random>.tmp: not at the
    temporaries of m.npz.x (a name that extends the target's) nor at other files."""
    for name in (".rnnpy-m.npz.x.abc123.tmp", ".rnnpy-m.npz.abc123.onnx.tmp", ".rnnpy-m.npz..tmp",
                 "m.npz.abc.tmp", ".rnnpy-m.npz.abc123.tmp"):
        (tmp_path / name).write_bytes(b"left")
    removed = io.remove_dead_temporaries(str(tmp_path / "m.npz"))
    assert [os.path.basename(p) for p in removed] == [".rnnpy-m.npz.abc123.tmp"]
    assert sorted(os.listdir(tmp_path)) == sorted([".rnnpy-m.npz.x.abc123.tmp", ".rnnpy-m.npz.abc123.onnx.tmp",
                                                   ".rnnpy-m.npz..tmp", "m.npz.abc.tmp"])
