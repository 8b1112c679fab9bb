"""Side effects and small things: no process state changed on import, no global RNG reseeded, a light CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_fileio_neither_reads_nor_sets_the_umask_and_outputs_follow_it(tmp_path):
    out = _python(f"""
        import os
        os.umask(0o027)
        calls = []
        real = os.umask
        os.umask = lambda mask: calls.append(mask) or real(mask)
        from physadv.fileio import atomic_write_text
        atomic_write_text({str(tmp_path / 'a.txt')!r}, "x")
        print(calls, oct(os.stat({str(tmp_path / 'a.txt')!r}).st_mode & 0o777))
    """)
    assert out == "[] 0o640"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind


def test_training_and_attacking_leave_the_callers_rng_alone(tmp_path, digits_classifier):
    import torch

    from physadv.classifiers.digits import train_digits
    from physadv.cli.main import main

    after = []
    for seed in ("0", "1"):  # building a model draws from the caller's RNG, but --seed must not reseed it
        torch.manual_seed(1234)
        assert main(["attack", "digits", "--model", "digits", "--method", "fgsm", "--eps", "32", "--limit", "2",
                     "--seed", seed, "--out", str(tmp_path / f"adv{seed}")]) == 0
        after.append(torch.random.get_rng_state())
    assert torch.equal(*after)
    before = torch.random.get_rng_state()
    checkpoints = []
    for name in ("a.pt", "b.pt"):  # one epoch: same weights for the same seed
        train_digits(tmp_path / name, epochs=1, progress=False)
        assert torch.equal(torch.random.get_rng_state(), before)
        checkpoints.append(torch.load(tmp_path / name, weights_only=True)["state_dict"])
    assert all(torch.equal(checkpoints[0][k], checkpoints[1][k]) for k in checkpoints[0])


def test_a_quiet_session_says_nothing(tmp_path, capsys):
    import torch

    from physadv.lab.session import Session, SessionConfig

    Session(tmp_path, SessionConfig(), torch.device("cpu"), progress=False).say("printing sheets")
    Session(tmp_path, SessionConfig(), torch.device("cpu"), progress=True).say("printing sheets")
    assert capsys.readouterr().err == "printing sheets\n"


def test_building_the_cli_parser_imports_no_heavy_module():
    loaded = _python("""
        import sys
        from physadv.cli.main import build_parser
        build_parser().format_help()
        print(sorted({name.split(".")[0] for name in sys.modules} & {"torch", "cv2", "kornia", "numpy", "PIL"}))
    """)
    assert loaded == "[]"


def test_version_and_help_defaults(capsys):
    from physadv.cli.main import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("physadv ")
    verbs = parser._subparsers._group_actions[0].choices
    for verb, sub in verbs.items():
        text = " ".join(sub.format_help().split())
        assert "(default: None)" not in text and "(default: False)" not in text, verb
        assert "(default ceil" in text or verb != "attack"
        assert "--device" not in text or "(default: auto)" in text or (
            verb in {"demo", "run", "compare"} and "default: the configuration's device" in text), verb


def test_images_positional_or_option_in_every_verb_that_takes_them():
    from physadv.cli.common import images_from
    from physadv.cli.main import build_parser
    from physadv.errors import InputError

    parser = build_parser()
    for verb, default in (("attack", None), ("classify", None), ("experiment", ["samples"]),
                          ("compare", ["samples"])):
        out = [] if verb == "classify" else ["--out", "o"]
        assert images_from(parser.parse_args([verb, "a", "b", *out])) == ["a", "b"]
        assert images_from(parser.parse_args([verb, "--images", "a", "b", *out])) == ["a", "b"]
        with pytest.raises(InputError, match="not both"):
            images_from(parser.parse_args([verb, "a", "--images", "b", *out]))
        if default:
            assert images_from(parser.parse_args([verb, *out])) == default
        else:
            with pytest.raises(InputError, match="no images"):
                images_from(parser.parse_args([verb, *out]))
