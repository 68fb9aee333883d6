"""Shape of the package: no module over 400 lines, no function over 60."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vramplan"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def long_modules() -> list[str]:
    return [f"{p.relative_to(PACKAGE)}: {n} lines" for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]


def long_functions() -> list[str]:
    out = []
    for p in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name}: {n} lines")
    return out


def test_no_module_over_400_lines():
    assert not long_modules()


def test_no_function_over_60_lines():
    assert not long_functions()


if __name__ == "__main__":
    print("\n".join(long_modules() + long_functions()) or "ok")
