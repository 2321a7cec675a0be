"""The README stays a front door and the documentation stays true to the measurements.

The site itself is built by `mkdocs build --strict` in CI (it needs the docs extra);
these checks need nothing beyond the test extra.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: A date such as 2026-12-01: measurements narrated by day belong in no page.
DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")
#: References a reader of the repository or the site cannot open.
UNREACHABLE = re.compile(r"\bissues? #?\d+|shared/spec", re.IGNORECASE)


def load_report():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_the_committed_tables_are_what_report_py_writes_from_the_results():
    tables, _ = load_report().render()
    assert tables, "benchmarks/results/ holds no results report.py knows"
    for name, text in tables.items():
        committed = DOCS / name
        assert committed.is_file(), f"docs/{name} is missing: run python benchmarks/report.py"
        assert committed.read_text() == text, \
            f"docs/{name} is out of date: run python benchmarks/report.py"


def test_report_py_marks_a_missed_target_and_leaves_out_the_measuring_machines_folders():
    report = load_report()
    run = {"command": "cnn-numpy train deep --dataset mnist --data-dir /somewhere/mnist",
           "summary": "Test set: CCE: 0.0200  CE: 0.0070", "ce": 0.007, "cce": 0.02,
           "accuracy_percent": 99.3, "seconds": 100.0, "target_ce": 0.006,
           "target_seconds": 600,
           "log": ["Training deep on mnist (54,000 train / 6,000 validation / 10,000 test "
                   "images, /somewhere/mnist): ..."]}
    table = report.accuracy_table({"mnist-deep": run})
    row = next(line for line in table.splitlines() if line.startswith("| `deep"))
    assert "/somewhere" not in row
    assert "54,000 + 6,000 / 10,000" in row and "CE <= 0.006 in 600 s" in row
    assert row.endswith("| **no** |")


def test_report_py_gives_each_zoo_ratio_its_range_over_the_repeats():
    """Beside each median ratio, the lowest and highest of the repeats' ratios; a figure
    counts as slower in every repeat when its highest is below 1.00x as printed."""
    report = load_report()
    speed = {"64": {"train": {"cnn-numpy": 900.0, "pytorch": 1000.0},
                    "predict": {"cnn-numpy": 1200.0, "pytorch": 1000.0}}}
    paired = {"64": {"train": [0.88, 0.9, 0.994], "predict": [0.96, 1.2, 1.3]}}
    network = {"shape": [28, 28, 1], "layers": "FlatLayer(), FCLayer_Softmax(10)",
               "about": "a test", "speed": speed, "paired_ratios": paired}
    table = report.zoo_table({"machine": "m", "threads": "2", "repeats": 3,
                              "networks": {"net": network}})
    assert "| net | 64 | 900 | 1,000 | **0.90x (0.88-0.99)** | 1,200 | 1,000 | " \
           "1.20x (0.96-1.30) |" in table
    assert "slower in every repeat in 1 of the figures: net training at batch 64." in table
    paired["64"]["train"][-1] = 0.996  # 1.00x as printed: not slower in that repeat
    assert "slower in every repeat in 0 of the figures." in report.zoo_table(
        {"machine": "m", "threads": "2", "repeats": 3, "networks": {"net": network}})


def test_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    for heading in ("The two commands", "Using the library", "Write your own layer",
                    "Where things are", "Follow one training step", "Documentation"):
        assert f"\n## {heading}\n" in text, heading
    assert "pip install -e . && cnn-numpy train cnn --dataset mnist-sample" in text
    assert 'pip install -e ".[test]" && python -m pytest -q' in text
    assert "https://www.djstein.com/cnn-numpy" in text  # what "the spec" is


@pytest.mark.parametrize("path", [README, *pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dated_narration_and_nothing_a_reader_cannot_open(path):
    text = path.read_text()
    assert not DATE.search(text), f"{path.name}: a date: {DATE.search(text).group()}"
    assert not UNREACHABLE.search(text), f"{path.name}: {UNREACHABLE.search(text).group()!r}"


def test_the_readme_links_to_files_that_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if not re.match(r"\w+://", target):
            assert (ROOT / target).is_file(), target


def test_every_page_is_in_the_navigation_and_every_included_section_exists():
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/-]+\.md)\s*$", config, re.M))
    written = {str(p.relative_to(DOCS)) for p in pages() if not p.name.endswith("-table.md")}
    assert listed == written
    for page in pages():
        for file, section in re.findall(r'--8<-- "([^":]+)(?::([\w-]+))?"', page.read_text()):
            assert (ROOT / file).is_file(), f"{page.name} includes {file}"
            if section:
                source = (ROOT / file).read_text()
                for end in ("start", "end"):
                    assert f"--8<-- [{end}:{section}]" in source, \
                        f"{page.name} includes {file}:{section}"
