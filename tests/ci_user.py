"""An ordinary user, made by a root test session, who runs the workflow as a cluster user would.

The user has no root and no write access outside its home. Its Python is one the administrator provides (the
system's python3, or the interpreter behind the test session's venv when the user may run it), with the
project's packages on PYTHONPATH, as a cluster module provides them: the session's own installed packages,
used read-only (hard-linked into /opt when the user cannot reach them where they are), so nothing is
installed twice.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

NAME = "imagenet-sd-ci"
SHARED_SITE = Path("/opt/imagenet-sd-ci-site-packages")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Scanned for files the user owns outside its home (each is searched without crossing into other mounts).
SCANNED = ("/", "/tmp", "/var/tmp", "/dev/shm", "/run")


def why_unavailable() -> str | None:
    """Why this session cannot make an unprivileged user, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to create an unprivileged user (CI runs `make test` as root)"
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        return "useradd/userdel not found"
    return None


@dataclass
class CIUser:
    name: str
    uid: int
    gid: int
    home: Path
    python: str
    env: dict = field(repr=False)

    @property
    def snakemake(self) -> list[str]:
        return [self.python, "-m", "snakemake"]

    def popen(self, cmd: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
        """`cmd` as this user (no shell, no su in between, so signals reach `cmd` itself)."""
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=self.env,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            umask=0o022,
            start_new_session=True,
            **kwargs,
        )

    def run(self, cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        with self.popen(cmd, cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # make and every job it started
                out, _ = proc.communicate()
                raise AssertionError(f"{' '.join(cmd)} ran past {timeout} s as {self.name}:\n{out[-4000:]}") from None
        return subprocess.CompletedProcess(cmd, proc.returncode, out, None)

    def give(self, path: Path) -> Path:
        """Make `path` (a tree root just copied by root) the user's own."""
        subprocess.run(["chown", "-R", "--no-dereference", f"{self.uid}:{self.gid}", str(path)], check=True)
        return path

    def clone(self, repo: Path, name: str) -> Path:
        """A fresh clone of `repo` in the user's home: the files git tracks (and new ones it does not ignore),
        as they are in the working tree, owned by the user."""
        listed = (
            subprocess.run(
                ["git", "-C", str(repo), "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True, check=True
            )
            .stdout.decode()
            .split("\0")
        )
        dest = self.home / name
        for rel in filter(None, listed):
            src = repo / rel
            if not src.exists() and not src.is_symlink():
                continue  # deleted in the working tree
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
        return self.give(dest)

    def files_outside_home(self) -> list[str]:
        """Every file or folder this user owns outside its home: what its runs wrote elsewhere."""
        found = set()
        for top in SCANNED:
            if not os.path.isdir(top):
                continue
            out = subprocess.run(
                [
                    "find",
                    top,
                    "-xdev",
                    "(",
                    "-path",
                    "/proc",
                    "-o",
                    "-path",
                    "/sys",
                    "-o",
                    "-path",
                    str(self.home),
                    ")",
                    "-prune",
                    "-o",
                    "-user",
                    self.name,
                    "-print",
                ],
                capture_output=True,
                text=True,
            ).stdout
            found.update(out.split("\n"))
        return sorted(p for p in found if p)


def _runs_as(uid: int, gid: int, cmd: list[str], env: dict) -> bool:
    try:
        proc = subprocess.run(cmd, env=env, user=uid, group=gid, extra_groups=[], capture_output=True, cwd="/")
    except PermissionError:  # the interpreter lies in a folder the user may not enter
        return False
    return proc.returncode == 0


def _user_python(uid: int, gid: int, env: dict) -> str | None:
    """An interpreter of this session's Python version that the user may run."""
    version = f"import sys; sys.exit(sys.version_info[:2] != {tuple(sys.version_info[:2])})"
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    for candidate in (base, "/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.isfile(candidate) and _runs_as(uid, gid, [candidate, "-c", version], env):
            return candidate
    return None


def _shared_packages(uid: int, gid: int, python: str, env: dict) -> Path:
    """This session's site-packages where the user can read it: in place, or hard-linked into SHARED_SITE."""
    site = Path(sysconfig.get_paths()["purelib"])
    check = [python, "-c", "import snakemake, torch, nltk"]
    if _runs_as(uid, gid, check, dict(env, PYTHONPATH=str(site))):
        return site
    shutil.rmtree(SHARED_SITE, ignore_errors=True)
    SHARED_SITE.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(site), str(SHARED_SITE)], capture_output=True).returncode != 0:
        shutil.rmtree(SHARED_SITE, ignore_errors=True)
        subprocess.run(["cp", "-a", str(site), str(SHARED_SITE)], check=True)  # another filesystem
    subprocess.run(["chmod", "-R", "a+rX", str(SHARED_SITE)], check=True)
    return SHARED_SITE


@contextlib.contextmanager
def unprivileged_user():
    """A new user NAME with an empty home; removed afterwards, with its home and any shared packages."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(NAME)
        subprocess.run(["userdel", "--remove", "--force", NAME], capture_output=True)  # left by a killed session
    subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", NAME], check=True)
    try:
        entry = pwd.getpwnam(NAME)
        env = {
            "HOME": entry.pw_dir,
            "USER": NAME,
            "LOGNAME": NAME,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "PATH": DEFAULT_PATH,
        }
        python = _user_python(entry.pw_uid, entry.pw_gid, env)
        if python is None:
            raise RuntimeError(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that user {NAME} may run")
        env["PATH"] = f"{os.path.dirname(python)}:{DEFAULT_PATH}"
        env["PYTHONPATH"] = str(_shared_packages(entry.pw_uid, entry.pw_gid, python, env))
        yield CIUser(NAME, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), python, env)
    finally:
        subprocess.run(["userdel", "--remove", "--force", NAME], capture_output=True)
        shutil.rmtree(SHARED_SITE, ignore_errors=True)
