"""The README's runnable examples run as written (a sketch with "..." placeholders is
skipped), so the public API it shows cannot drift."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "..." not in b]


def test_there_are_runnable_examples():
    assert len(BLOCKS) >= 2


def test_examples_run_in_order():
    namespace = {}
    for block in BLOCKS:  # later blocks reuse the imports of earlier ones, as a reader would
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["dist"].shape == (2, 16)
