"""Side effects and small things: no process state changed on import, no global RNG reseeded, a light CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
