"""The README's sample outputs are what the commands print: bench/readme_examples.py regenerates them."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("readme_examples", ROOT / "bench" / "readme_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_examples_are_what_the_commands_print():
    diff = _script().check()
    assert not diff, "README examples drifted; run `python bench/readme_examples.py`:\n" + "\n".join(diff[:60])


def test_every_sample_output_in_the_readme_is_a_generated_example():
    script = _script()
    text = (ROOT / "README.md").read_text()
    inside = "".join(m.group(0) for m in script.BLOCK.finditer(text))
    shown = [line for line in text.splitlines() if line.lstrip().startswith("$ vramplan")]
    assert shown, "the README shows no command output"
    loose = [line for line in shown if line not in inside]
    assert not loose, f"sample output not marked as an example (<!-- example: ... -->): {loose}"
