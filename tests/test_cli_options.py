"""The command line answers a bad option value with one argparse line naming
the option and exit status 2; every option has help; check says when PyTorch
is missing; --threads reaches the layers; the bench measures the peak."""
import json
import os
import sys

import pytest

from rnnpy.tools import bench, cli


@pytest.mark.parametrize("argv,option", [
    (["char-rnn", "--text", "nope.txt"], "--text"),
    (["seq-classification", "--hidden", "0"], "--hidden"),
    (["echo", "--lr", "-1"], "--lr"),
    (["echo", "--echo-step", "x"], "--echo-step"),
    (["char-rnn", "--dropout", "1"], "--dropout"),
    (["char-rnn", "--seq-len", "0"], "--seq-len"),
    (["seq-classification", "--epochs", "-2"], "--epochs"),
    (["check", "--threads", "0"], "--threads"),
])
def test_bad_value_exits_2_with_one_line(capsys, argv, option):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"rnnpy {argv[0]}: error: argument {option}: ")


@pytest.mark.parametrize("argv,option", [(["--repeat", "0"], "--repeat"), (["--threads", "1,0"], "--threads"),
                                         (["--min-time", "-1"], "--min-time"), (["--peak", "0"], "--peak")])
def test_bench_bad_value_exits_2_with_one_line(capsys, argv, option):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"python -m rnnpy bench: error: argument {option}: ")


def test_text_that_is_not_utf8_is_named(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SystemExit):
        cli.main(["char-rnn", "--text", str(bad)])
    err = capsys.readouterr().err
    assert "argument --text: " in err and "is not UTF-8 text" in err


def test_every_option_has_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_check_says_when_pytorch_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch raises ImportError
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert "PyTorch is not installed" in out and "n/a" in out


def test_threads_option_sets_the_layers_threads(monkeypatch):
    import rnnpy

    monkeypatch.setenv("RNNPY_NUM_THREADS", "1")   # restored after the test
    args = cli.build_parser().parse_args(["echo", "--threads", "2"])
    cli._apply_threads(args)
    assert rnnpy.LSTM(2, 3).threads == 2


def test_bench_measures_the_peak_on_this_machine(capsys):
    rc = bench.main(["--json", "--cells", "rnn", "--threads", "1", "--modes", "forward", "--no-gemm",
                     "--no-options", "--no-torch", "--shapes", "2,1,2,2", "--repeat", "3",
                     "--warmup", "0", "--min-time", "0"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["info"]
    assert info["peak_source"].startswith("measured") and info["peak_gflops_per_core"] > 0.1
    assert info["peak_gflops_per_core"] != 132.0


def test_output_into_a_closed_pipe_ends_without_a_traceback():
    import subprocess

    p = subprocess.run(f"{sys.executable} -m rnnpy check | head -1", shell=True, capture_output=True,
                       text=True, timeout=600)
    assert p.stdout.startswith("rnnpy check:") and "Traceback" not in p.stderr, p.stderr
