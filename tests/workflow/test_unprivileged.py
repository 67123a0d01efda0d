"""`make demo` as an ordinary cluster user, from a fresh clone.

The root test session plays the administrator: it has installed the system packages (`make test` did) and
provides a Python with the project's packages (tests/ci_user.py). The user, without root, runs `make demo`
in its own clone, then runs it again (the `user_demo` fixture of conftest.py: the session's one demo run,
which the other demo tests read a copy of). Skipped only where no such user can be made (not root, no useradd).
"""

from __future__ import annotations

import re

import pytest
from ci_user import why_unavailable
from conftest import REPO, USER_DEMO_CLONE

pytestmark = [pytest.mark.unprivileged, pytest.mark.e2e]
if why_unavailable():
    pytestmark.append(pytest.mark.skip(reason=why_unavailable()))

# What may appear in the user's home besides its clone (and a SLURM test's copy): the user's cache and
# config directories (XDG), written by libraries (matplotlib's font cache, for instance).
HOME_DIRS = {".cache", ".config"}


SNAKEMAKE_TMP = re.compile(r"/tmp/snakemake[A-Za-z0-9_]{8}(/.*)?")


def test_make_demo_finishes_as_the_user_with_the_administrators_python(user_demo, ci_user):
    first, clone = user_demo["first"], user_demo["clone"]
    assert first.returncode == 0, first.stdout[-6000:]
    assert f"using {ci_user.python} as it is" in first.stdout  # nothing installed, no venv made
    assert "installing Debian packages" not in first.stdout and not (clone / ".venv").exists()
    assert "| digits-sd |" in (clone / "results/tables/evaluation.md").read_text()
    not_the_users = [str(p) for p in clone.rglob("*") if p.lstat().st_uid != ci_user.uid]
    assert not not_the_users, f"files in the clone the user does not own: {not_the_users[:10]}"


def test_a_second_make_demo_schedules_nothing(user_demo):
    second = user_demo["second"]
    assert second.returncode == 0, second.stdout[-4000:]
    assert "Nothing to be done" in second.stdout, second.stdout[-4000:]


def test_make_setup_without_root_names_the_missing_debian_packages_and_goes_on(ci_user):
    """No WordNet files where Debian puts them: the user is told which packages would help; no apt-get."""
    clone = ci_user.clone(REPO, "setup-check")
    out = ci_user.run(["make", "setup", "WORDNET_DIR=/nonexistent/wordnet"], clone, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "would help: wordnet-base wordnet-sense-index" in out.stdout, out.stdout
    assert "installing Debian packages" not in out.stdout


def test_the_user_wrote_only_under_its_clone_and_its_home(user_demo, ci_user):
    """Nothing of the user's outside its home (no /tmp or /dev/shm leftovers either, SLURM runs included);
    inside its home, only the clone, a SLURM test's copy and the cache/config directories."""
    # Snakemake's own per-process temporary folder (/tmp/snakemakeXXXXXXXX, a TemporaryDirectory) cannot be
    # removed by a job that the SLURM test kills on purpose: that leftover is Snakemake's, not the workflow's
    assert [p for p in ci_user.files_outside_home() if not SNAKEMAKE_TMP.fullmatch(p)] == []
    home = {p.name for p in ci_user.home.iterdir()} - user_demo["home_before"]
    assert home <= {USER_DEMO_CLONE, "setup-check", "slurm-demo"} | HOME_DIRS, sorted(home)
    written = sorted(str(p.relative_to(ci_user.home)) for d in HOME_DIRS & home for p in (ci_user.home / d).iterdir())
    print("cache/config written:", written)
