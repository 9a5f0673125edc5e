"""CPU: the GPU machine's scripts run what they say. ``gpu_suite.sh`` (the whole GPU suite) selects every test of
every ``tests/test_gpu_*.py``; each ``-k`` selection in it and in ``sm90_checks.sh`` selects tests; every
compute-sanitizer case ``sm90_checks.sh`` names exists; ``device_cache.sh``'s precompile sets name registered
variants and known options. A typo there would otherwise show only as a part that ran nothing, on a device call
that cannot be repeated cheaply. The scripts are read by pattern: a part started other than
by ``run`` / ``part`` with literal file names, or a case named outside ``SM90_CASES`` / ``AB_SANITIZE`` /
``sanitize`` / ``sm90_tests`` lines, is not seen."""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "benchmarks"
# `run NAME files... [-k "expr"]` (gpu_suite.sh) and `part NAME files... [-k "expr"]` (sm90_checks.sh)
SELECTION = re.compile(r'^\s*(?:run|part) \S+ ((?:tests/\S+\.py ?)+)(?:-k "([^"]*)")?', re.M)
CASE_NAME = re.compile(r"\b(?:prefill|decode|varlen)_\w+")


def selections(script: str) -> list[tuple[tuple[str, ...], str | None]]:
    """(test files, -k expression) of each part a script starts; parts whose selection holds shell variables are
    left out (their values exist only at run time)."""
    found = []
    for m in SELECTION.finditer((SCRIPTS / script).read_text()):
        if m[2] is not None and "$" in m[2]:
            continue
        found.append((tuple(m[1].split()), m[2]))
    return found


def collect(files: tuple[str, ...], expr: str | None) -> list[str]:
    """Node ids pytest selects (its own -k rules, in a child process)."""
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files]
    if expr is not None:
        cmd += ["-k", expr]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return [line for line in done.stdout.splitlines() if "::" in line]


ALL_GPU_FILES = tuple(sorted(f"tests/{p.name}" for p in (ROOT / "tests").glob("test_gpu_*.py")))
SELECTIONS = sorted({*selections("gpu_suite.sh"), *selections("sm90_checks.sh")}, key=str)


@pytest.fixture(scope="module")
def selected() -> dict:
    """Every selection's node ids, and every GPU test's (collections side by side: each starts a Python)."""
    jobs = [*SELECTIONS, (ALL_GPU_FILES, None)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(zip(jobs, pool.map(lambda job: collect(*job), jobs)))


def test_the_scripts_have_selections():
    assert len(selections("gpu_suite.sh")) >= 15 and len(selections("sm90_checks.sh")) >= 10
    assert len(ALL_GPU_FILES) >= 5


@pytest.mark.parametrize("files,expr", SELECTIONS, ids=[f"{' '.join(f)} -k {e}" for f, e in SELECTIONS])
def test_each_selection_selects_tests(selected, files, expr):
    assert selected[(files, expr)], f"{files} -k {expr!r} selects no test"


def test_the_whole_suite_runs_every_gpu_test(selected):
    everything = set(selected[(ALL_GPU_FILES, None)])
    assert len(everything) > 100
    in_suite = set().union(*(selected[s] for s in selections("gpu_suite.sh")))
    missing = sorted(everything - in_suite)
    assert not missing, f"{len(missing)} GPU tests in no part of gpu_suite.sh, e.g. {missing[:5]}"


def test_sanitizer_cases_named_by_the_checks_exist():
    sys.path.insert(0, str(SCRIPTS))
    import sanitizer_cases

    text = (SCRIPTS / "sm90_checks.sh").read_text()
    named = set()
    for m in re.finditer(r'SM90_CASES="([^"]*)"|AB_SANITIZE:-([^}]*)\}', text):
        named |= set(CASE_NAME.findall(m[1] or m[2]))
    joined = re.sub(r"\\\n", " ", text)  # a call continued over lines is one line
    for line in joined.splitlines():
        if re.match(r"\s*(sanitize|sm90_tests) ", line):
            named |= set(CASE_NAME.findall(line))
    assert len(named) >= 15
    unknown = sorted(named - set(sanitizer_cases.CASES))
    assert not unknown, f"sanitizer cases named in sm90_checks.sh but not defined: {unknown}"


def test_device_cache_sets_name_registered_variants():
    """Each precompile set of ``device_cache.sh`` names registered sm90 variants and options of ``precompile``, and
    the script parses as bash."""
    from cute_attention import REGISTRY

    script = SCRIPTS / "device_cache.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = re.sub(r"\\\n\s*", " ", script.read_text())
    sets = dict(re.findall(r'^\s*(\w+)\) echo "([^"]*)" ;;', text, re.M))
    assert {"grid", "cpasync"} <= set(sets)
    usage = subprocess.run([sys.executable, "-m", "cute_attention", "precompile", "--help"], check=True,
                           capture_output=True, text=True).stdout
    for name, spec in sets.items():
        words = spec.split()
        unknown = [w for w in words if w.startswith("--") and w not in usage]
        assert not unknown, (name, unknown)
        variants = [words[i + 1] for i, w in enumerate(words) if w == "--variant"]
        assert all(REGISTRY.get(v).config == "sm90" for v in variants), (name, variants)
