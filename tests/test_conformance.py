"""`kiosk package verify --bag-only` agrees with every bag of the BagIt conformance suite.

The suite lives beside the project (../shared/bagit-conformance, or $BAGIT_CONFORMANCE):
`valid` and `warning` bags must pass, `invalid` and `linux-only` ones must fail.
LoC's `bagit` is run on the same bags as a cross-check, except where it is known to
disagree with the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import cli
from tests.conftest import missing, need_module

ROOT = Path(__file__).resolve().parent.parent


def _suite() -> Path | None:
    env = os.environ.get("BAGIT_CONFORMANCE")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "bagit-conformance", ROOT.parent / "bagit-conformance"]
    return next((c for c in candidates if (c / "v1.0").is_dir()), None)


SUITE = _suite()
EXPECT = {"valid": True, "warning": True, "invalid": False, "linux-only": False}
# Bags where LoC's bagit (1.8) and the suite disagree; the suite is the judge.
BAGIT_DISAGREES = {
    "v1.0/invalid/bagit-with-invalid-whitespace",
    "v0.97/warning/duplicate-file-with-different-case",
    "v0.97/warning/same-filename-listed-twice-with-different-normalization",
    "v0.97/warning/special-system-files",
}


def _cases() -> list:
    if SUITE is None:
        return [pytest.param(None, None, marks=pytest.mark.needs(False, "bagit-conformance suite not found"))]
    cases = []
    for version in sorted(SUITE.glob("v*")):
        for kind, ok in EXPECT.items():
            for bag in sorted((version / kind).glob("*")):
                if bag.is_dir():
                    cases.append(pytest.param(bag, ok, id=str(bag.relative_to(SUITE))))
    return cases


CASES = _cases()


def test_the_suite_has_both_versions_and_every_kind() -> None:
    if SUITE is None:
        missing("bagit-conformance suite not found (set BAGIT_CONFORMANCE)")
    ids = [c.id for c in CASES]
    assert any(i.startswith("v1.0/valid/") for i in ids)
    assert any(i.startswith("v0.97/warning/") for i in ids)
    assert any(i.startswith("v0.97/linux-only/") for i in ids)
    assert any(i.startswith("v1.0/invalid/") for i in ids)


@pytest.mark.parametrize("bag,ok", CASES)
def test_verify_bag_only_agrees_with_the_conformance_suite(bag: Path, ok: bool, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["package", "verify", "--bag-only", str(bag)])
    out, err = capsys.readouterr()
    assert code == (0 if ok else 1), out + err
    if ok:
        assert "valid bag" in out
    else:
        assert "rejected" in err


@pytest.mark.parametrize("bag,ok", [c for c in CASES if c.id and c.id.split("/")[1] == "warning"])
def test_warning_bags_pass_with_a_warning_printed(bag: Path, ok: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["package", "verify", "--bag-only", str(bag)]) == 0
    assert "warning" in capsys.readouterr().err


@pytest.mark.parametrize("bag,ok", [c for c in CASES if c.id not in BAGIT_DISAGREES])
def test_loc_bagit_agrees_on_the_same_bags(bag: Path, ok: bool) -> None:
    bagit = need_module("bagit")
    try:
        bagit.Bag(str(bag)).validate()
        loc_ok = True
    except (bagit.BagError, bagit.BagValidationError):
        loc_ok = False
    assert loc_ok == ok


def test_the_real_command_judges_a_valid_and_an_invalid_bag() -> None:
    if SUITE is None:
        missing("bagit-conformance suite not found (set BAGIT_CONFORMANCE)")
    script = shutil.which("kiosk", path=str(Path(sys.executable).parent))
    cmd = [script] if script else [sys.executable, "-m", "kiosk.cli"]
    cmd += ["package", "verify", "--bag-only"]
    good = subprocess.run([*cmd, str(SUITE / "v1.0/valid/basicBag")], capture_output=True, text=True, timeout=60)
    bad = subprocess.run(
        [*cmd, str(SUITE / "v1.0/invalid/same-filename-listed-twice-with-the-same-hash")],
        capture_output=True, text=True, timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0  # one plain line


@pytest.mark.parametrize("bag,ok", CASES)
def test_the_same_bag_as_a_tar_gets_the_same_verdict(bag: Path, ok: bool, tmp_path: Path) -> None:
    import tarfile

    from kiosk.errors import PackageRejected
    from kiosk.library.bag import validate_bag

    tar = tmp_path / f"{bag.name}.tar"
    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as t:
        t.add(bag, arcname=bag.name)
    try:
        validate_bag(tar)
        verdict = True
    except PackageRejected:
        verdict = False
    assert verdict == ok
