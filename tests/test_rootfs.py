"""The SD card image without a Pi: the kiosk stage installed into a Debian root file system.

A bookworm amd64 root file system is made once with debootstrap plus the stage's package
list (image-build/stage-kiosk/00-kiosk/00-packages) and cached outside the repository,
keyed by that list, so reruns only pay for the install. Each run mounts an overlay on the
cached tree and installs the kiosk with THE SAME scripts pi-gen runs: 01-run.sh on the host
side with ROOTFS_DIR set, 02-run-chroot.sh fed to bash inside a chroot. Then it checks inside
that the units are enabled and verify, and that `kiosk run` starts and answers /healthz; runs
the first-boot scripts, the screens' command under cage, the polkit rule under the image's
polkitd; and boots the tree with its own systemd (systemd-nspawn) to watch the box come up,
be restarted by the watchdog when it hangs, and be switched off through the power helper.

Needs root, debootstrap and overlayfs (systemd-nspawn for the boot); tools/rootfs-test.sh
installs what is missing and runs it on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import free_port, missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parent.parent
STAGE = REPO / "image-build" / "stage-kiosk" / "00-kiosk"  # pi-gen's view of image-build/install/
CACHE = Path(os.environ.get("KIOSK_ROOTFS_CACHE", "/var/cache/field-kiosk"))
SUITE = "bookworm"
# What a Raspberry Pi OS Lite (pi-gen stage2) already has and a minbase debootstrap lacks.
BASE_PACKAGES = ["systemd-sysv", "udev", "procps", "iproute2", "sudo", "locales"]
CACHE_FORMAT = "1"  # bump when the way the cached tree is made changes

BOX_UNITS = ["kiosk.service", "kiosk-display.service", "kiosk-setup.service", "kiosk-data-partition.service"]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mounts)"
    for tool in ("debootstrap", "chroot", "mount", "systemd-analyze"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


if os.environ.get("KIOSK_SKIP_ROOTFS") == "1":  # asked for by whoever runs the tests, not missing
    pytestmark.append(pytest.mark.skip(reason="KIOSK_SKIP_ROOTFS=1 (run it on its own with tools/rootfs-test.sh)"))
else:
    pytestmark.append(pytest.mark.needs(_why_not() is None, _why_not() or ""))


def stage_packages() -> list[str]:
    """The Debian packages the kiosk stage installs (00-packages, comments dropped)."""
    words: list[str] = []
    for line in (STAGE / "00-packages").read_text().splitlines():
        words += line.split("#", 1)[0].split()
    return words


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses, so debootstrap fetches from the same place."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            if SUITE in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
                return fields["URIs"].split()[0].strip()
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                    return parts[1] if not parts[1].startswith("[") else parts[2]
    return "http://deb.debian.org/debian"


def _run(argv: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, text=True, capture_output=True, **kw)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/proc, /sys and /dev inside root, as pi-gen's on_chroot provides them."""
    mounted: list[Path] = []
    try:
        for target, argv in ((root / "proc", ["mount", "-t", "proc", "proc"]), (root / "sys", ["mount", "-t", "sysfs", "sysfs"]),
                             (root / "dev", ["mount", "--rbind", "/dev"])):
            target.mkdir(exist_ok=True)
            _run([*argv, str(target)])
            mounted.append(target)
            if target.name == "dev":
                # unmounting the copy must never propagate back to this machine's /dev
                _run(["mount", "--make-rslave", str(target)])
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-R", "-l", str(target)], capture_output=True)


def base_rootfs() -> Path:
    """The cached debootstrap tree with the stage's packages; made on first use."""
    mirror = apt_mirror()
    key_text = "\n".join([CACHE_FORMAT, SUITE, mirror, *BASE_PACKAGES, *stage_packages()])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    final = CACHE / f"rootfs-{SUITE}-amd64-{key}"
    if (final / "usr" / "bin" / "chromium").exists():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f"building-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(work), mirror], timeout=3000)
    # As pi-gen does: no daemon starts while packages are installed into the tree.
    policy = work / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", work / "etc" / "resolv.conf")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    with chroot_mounts(work):
        _run(["chroot", str(work), "apt-get", "update", "-q"], env=env, timeout=600)
        _run(["chroot", str(work), "apt-get", "install", "-y", "-q", "--no-install-recommends", *stage_packages()], env=env, timeout=3000)
        _run(["chroot", str(work), "apt-get", "clean"], env=env, timeout=600)
    policy.unlink()
    try:
        work.rename(final)
    except OSError:  # another run finished the same tree first: keep that one
        shutil.rmtree(work, ignore_errors=True)
        return final
    # one tree is enough: drop those of older package lists (about 1 GiB each)
    for old in CACHE.glob(f"rootfs-{SUITE}-amd64-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    sys.stderr.write(f"rootfs cache built in {time.monotonic() - started:.0f} s: {final}\n")
    return final


def wheelhouse(dest: Path) -> Path:
    """The kiosk's wheel (built now) and its dependencies' wheels (cached by pyproject.toml)."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    deps = CACHE / f"wheels-py{sys.version_info.major}{sys.version_info.minor}-{hashlib.sha256(pyproject).hexdigest()[:16]}"
    dest.mkdir(parents=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(REPO)], timeout=600)
    if not deps.exists():
        tmp = deps.with_name(deps.name + f".{os.getpid()}")
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(tmp), str(REPO)], timeout=1200)
        for own in tmp.glob("field_kiosk-*.whl"):
            own.unlink()
        try:
            tmp.rename(deps)
        except OSError:  # another run filled the same folder first
            shutil.rmtree(tmp, ignore_errors=True)
        for old in CACHE.glob("wheels-py*"):
            if old != deps and not old.name.endswith(f".{os.getpid()}"):
                shutil.rmtree(old, ignore_errors=True)
    for wheel in deps.glob("*.whl"):
        shutil.copy(wheel, dest)
    return dest


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cached tree under an overlay, with the kiosk stage installed by its own scripts."""
    base = base_rootfs()
    tmp = tmp_path_factory.mktemp("rootfs")
    upper, workdir, root = tmp / "upper", tmp / "work", tmp / "root"
    for d in (upper, workdir, root):
        d.mkdir()
    _run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={workdir}", str(root)])
    try:
        wheels = wheelhouse(tmp / "wheels")
        env = {**os.environ, "ROOTFS_DIR": str(root), "KIOSK_WHEELS": str(wheels), "KIOSK_OFFLINE": "1"}
        _run([str(STAGE / "01-run.sh")], env=env, timeout=600)
        with chroot_mounts(root):
            chroot_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
            script = (STAGE / "02-run-chroot.sh").read_text()
            # pi-gen's on_chroot: the script on standard input of `bash -e` inside the chroot
            _run(["chroot", str(root), "/bin/bash", "-e"], input=script, env=chroot_env, timeout=1200)
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


@pytest.fixture
def image_root(image_tree: Path) -> Iterator[Path]:
    """The installed tree with /proc, /sys and /dev, for commands run in a chroot."""
    with chroot_mounts(image_tree):
        yield image_tree


def test_the_box_units_are_enabled_in_the_image(image_root: Path) -> None:
    for unit in BOX_UNITS:
        done = subprocess.run(["chroot", str(image_root), "systemctl", "is-enabled", unit], capture_output=True, text=True)
        assert done.stdout.strip() == "enabled", f"{unit}: {done.stdout}{done.stderr}"
    done = subprocess.run(["chroot", str(image_root), "systemctl", "is-enabled", "getty@tty1.service"], capture_output=True, text=True)
    assert done.stdout.strip() != "enabled"


def test_every_installed_unit_verifies_inside_the_image(image_root: Path) -> None:
    units = sorted(p.name for p in (image_root / "etc" / "systemd" / "system").glob("kiosk*.service"))
    units = [u.replace("kiosk-power@.service", "kiosk-power@reboot.service").replace("@.service", "@test.service") for u in units]
    assert set(BOX_UNITS) <= set(units)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={image_root}", *units],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 0 and not complaints, "\n".join(complaints)


def test_the_image_has_the_appliance_settings(image_root: Path) -> None:
    etc = image_root / "etc"
    assert "RuntimeWatchdogSec=" in (etc / "systemd" / "system.conf.d" / "50-kiosk-watchdog.conf").read_text()
    assert "Storage=volatile" in (etc / "systemd" / "journald.conf.d" / "50-kiosk.conf").read_text()
    # the data partition is found by identity on the boot disk, never by a label in fstab
    assert "kioskdata" not in (etc / "fstab").read_text() and "LABEL=" not in (etc / "fstab").read_text()
    trust = etc / "kiosk" / "trust"
    assert trust.stat().st_uid == 0 and trust.stat().st_mode & 0o022 == 0
    assert (etc / "polkit-1" / "rules.d" / "50-kiosk-power.rules").exists()
    for helper in ("kiosk-power", "kiosk-power-action", "kiosk-display-failed", "kiosk-setup", "kiosk-readonly-root", "kiosk-data-partition"):
        assert os.access(image_root / "usr" / "lib" / "kiosk" / helper, os.X_OK)
    assert not (image_root / "var" / "cache" / "kiosk-wheels").exists()
    for unit in (etc / "systemd" / "system").glob("kiosk*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith("Documentation=file://"):
                assert (image_root / line.removeprefix("Documentation=file:///")).exists(), line
    passwd = (etc / "passwd").read_text()
    assert "\nkiosk:" in "\n" + passwd and "\nkiosk-display:" in "\n" + passwd
    owner = _run(["chroot", str(image_root), "stat", "-c", "%U", "/var/lib/kiosk"]).stdout.strip()
    assert owner == "kiosk"


def test_the_kiosk_starts_in_the_image_and_answers_healthz(image_root: Path) -> None:
    port = free_port()
    (image_root / "etc" / "kiosk" / "test.toml").write_text(
        f'[web]\nhost = "127.0.0.1"\nport = {port}\n[hardware]\nbackend = "fake"\n[storage]\ndata_dir = "/var/lib/kiosk"\n'
    )
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/var/lib/kiosk", "LC_ALL": "C.UTF-8"}
    # numeric ids: chroot must not look the name up in this machine's own user database
    ids = _run(["chroot", str(image_root), "id", "-u", "kiosk"]).stdout.strip(), _run(["chroot", str(image_root), "id", "-g", "kiosk"]).stdout.strip()
    proc = subprocess.Popen(
        ["chroot", f"--userspec={ids[0]}:{ids[1]}", str(image_root), "/opt/kiosk/bin/kiosk", "run", "--config", "/etc/kiosk/test.toml"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        status = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    status = resp.status
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"kiosk did not answer /healthz; exit={proc.poll()}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
        if output:
            sys.stderr.write(output[-4000:])


def test_the_first_boot_setup_takes_the_settings_from_the_boot_drive(image_root: Path) -> None:
    boot = image_root / "boot" / "firmware"
    (boot / "kiosk-trust").mkdir(parents=True, exist_ok=True)
    (boot / "kiosk.toml").write_text('[point]\nid = "dongfeng-01"\nname = "东风村服务点"\n', encoding="utf-8")
    (boot / "kiosk-trust" / "county.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    (boot / "kiosk-admin-password.txt").write_text("village-admin-1\n")
    # as kiosk-setup.service runs it: the trust folder is root's, outside the box's data folder
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "KIOSK_STORAGE_TRUST_DIR": "/etc/kiosk/trust"}
    _run(["chroot", str(image_root), "/usr/lib/kiosk/kiosk-setup"], env=env, timeout=120)
    assert 'id = "dongfeng-01"' in (image_root / "etc" / "kiosk" / "kiosk.toml").read_text(encoding="utf-8")
    assert _run(["chroot", str(image_root), "stat", "-c", "%U:%G %a", "/etc/kiosk/kiosk.toml"]).stdout.strip() == "root:kiosk 640"
    assert _run(["chroot", str(image_root), "stat", "-c", "%U %a", "/etc/kiosk/trust/county.pem"]).stdout.strip() == "root 644"
    assert not (boot / "kiosk.toml").exists() and not (boot / "kiosk-admin-password.txt").exists()
    result = (boot / "kiosk-setup-result.txt").read_text()
    assert "kiosk.toml applied" in result and "password set" in result


@contextlib.contextmanager
def loop_card(path: Path) -> Iterator[str]:
    """A loop device over an image file, with its partitions."""
    dev = _run(["losetup", "--find", "--show", "--partscan", str(path)]).stdout.strip()
    try:
        subprocess.run(["partx", "-a", dev], capture_output=True)
        if not Path(f"/sys/class/block/{Path(dev).name}p1").exists():
            missing("this kernel makes no partition devices for loop devices (no MBR partition support)")
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], capture_output=True)


def test_the_first_boot_makes_the_data_partition_from_the_rest_of_the_card(image_root: Path) -> None:
    if shutil.which("losetup") is None or not Path("/dev/loop-control").exists():
        missing("needs loop devices")
    # A small card laid out as pi-gen does: boot (FAT) at 4 MiB, root right after, the rest free.
    card = image_root / "card.img"
    with card.open("wb") as f:
        f.truncate(300 * 1024 * 1024)
    _run(["chroot", str(image_root), "sfdisk", "--quiet", "/card.img"], input="8192,65536,c\n73728,204800,L\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "KIOSK_DATA_MIN_FREE_MB": "50"}
    with loop_card(card) as dev:
        root_part = f"{dev}p2"
        _run(["chroot", str(image_root), "mkfs.ext4", "-q", "-L", "rootfs", root_part])
        try:
            first = _run(["chroot", str(image_root), "/usr/lib/kiosk/kiosk-data-partition"], env={**env, "KIOSK_ROOT_DEVICE": root_part}, timeout=300)
            table = _run(["chroot", str(image_root), "sfdisk", "--dump", dev]).stdout
            assert f"{dev}p1" in table and f"{dev}p2" in table and f"{dev}p3" in table
            # found again by the partition UUID it recorded, never by a label
            uuid = _run(["blkid", "-p", "-o", "value", "-s", "PART_ENTRY_UUID", f"{dev}p3"]).stdout.strip()
            assert (image_root / "etc" / "kiosk" / "data-partuuid").read_text().strip() == uuid
            assert _run(["blkid", "-p", "-o", "value", "-s", "LABEL", f"{dev}p3"], check=False).stdout.strip() == ""
            assert _run(["findmnt", "-n", "-o", "SOURCE", str(image_root / "var" / "lib" / "kiosk")]).stdout.strip() == f"{dev}p3"
            assert _run(["chroot", str(image_root), "stat", "-c", "%U", "/var/lib/kiosk"]).stdout.strip() == "kiosk"
            assert "mounted" in first.stderr
            # the next boot finds it, mounts it and changes nothing on the card
            _run(["umount", str(image_root / "var" / "lib" / "kiosk")])
            again = _run(["chroot", str(image_root), "/usr/lib/kiosk/kiosk-data-partition"], env={**env, "KIOSK_ROOT_DEVICE": root_part}, timeout=120)
            assert f"mounted {dev}p3" in again.stderr and "making" not in again.stderr
            assert _run(["chroot", str(image_root), "sfdisk", "--dump", dev]).stdout == table
        finally:
            subprocess.run(["umount", str(image_root / "var" / "lib" / "kiosk")], capture_output=True)


def test_the_first_boot_leaves_a_card_without_free_space_alone(image_root: Path) -> None:
    if shutil.which("losetup") is None or not Path("/dev/loop-control").exists():
        missing("needs loop devices")
    card = image_root / "full.img"
    with card.open("wb") as f:
        f.truncate(120 * 1024 * 1024)
    _run(["chroot", str(image_root), "sfdisk", "--quiet", "/full.img"], input="8192,65536,c\n73728,,L\n")
    with loop_card(card) as dev:
        before = _run(["chroot", str(image_root), "sfdisk", "--dump", dev]).stdout
        done = _run(["chroot", str(image_root), "/usr/lib/kiosk/kiosk-data-partition"],
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KIOSK_ROOT_DEVICE": f"{dev}p2"}, timeout=120)
        assert "stays on the root file system" in done.stderr
        assert _run(["chroot", str(image_root), "sfdisk", "--dump", dev]).stdout == before


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in box page that remembers who asked for it."""

    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).seen.append((self.path, self.headers.get("User-Agent", "")))
        body = b"<!doctype html><title>kiosk</title><h1>ok</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _unit_command(text: str) -> tuple[str, dict[str, str]]:
    """ExecStart= and the Environment= of a unit file, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    env: dict[str, str] = {}
    command = ""
    for line in joined.splitlines():
        if line.startswith("Environment="):
            key, _, value = line[len("Environment="):].partition("=")
            env[key] = value
        elif line.startswith("ExecStart="):
            command = line[len("ExecStart="):]
    return command, env


def test_the_screens_command_shows_the_box_page_in_chromium_under_cage(image_root: Path) -> None:
    """kiosk-display.service's own command line, on a headless output (no screen here)."""
    handler = type("Handler", (_Recorder,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    command, unit_env = _unit_command((image_root / "etc" / "systemd" / "system" / "kiosk-display.service").read_text())
    argv = [w.replace("${KIOSK_URL}", url) for w in command.split()]
    # A chroot may not make user namespaces, so Chromium's sandbox cannot start here.
    argv.append("--no-sandbox")
    uid = _run(["chroot", str(image_root), "id", "-u", "kiosk-display"]).stdout.strip()
    gid = _run(["chroot", str(image_root), "id", "-g", "kiosk-display"]).stdout.strip()
    runtime = image_root / "run" / "kiosk-display"
    xdg = image_root / "run" / "user" / uid
    for d in (runtime, xdg):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, int(uid), int(gid))
        d.chmod(0o700)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **unit_env, "XDG_RUNTIME_DIR": f"/run/user/{uid}",
           "WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman"}
    # its own process group, so cage, Chromium and Chromium's helpers all end with the test
    proc = subprocess.Popen(["chroot", f"--userspec={uid}:{gid}", str(image_root), *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not handler.seen and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert handler.seen, f"Chromium never asked for the page; exit={proc.poll()}"
        path, agent = handler.seen[0]
        assert path == "/" and "Chrome/" in agent
        assert proc.poll() is None, "cage stopped after loading the page"
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # Chromium's helpers may outlive cage for a moment: none may keep the pipe open
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.stdout.read() if proc.stdout else ""
        if not handler.seen:
            sys.stderr.write(output[-4000:])


def test_polkit_in_the_image_lets_the_box_start_exactly_its_power_units(image_root: Path) -> None:
    """The installed rule, judged by the image's own polkitd on its own system bus."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
    (image_root / "run" / "dbus").mkdir(parents=True, exist_ok=True)
    bus = _run(["chroot", str(image_root), "dbus-daemon", "--system", "--fork", "--print-pid"], env=env).stdout.split()[0]
    polkitd = subprocess.Popen(["chroot", str(image_root), "/usr/lib/polkit-1/polkitd", "--no-debug"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uid = _run(["chroot", str(image_root), "id", "-u", "kiosk"]).stdout.strip()
    gid = _run(["chroot", str(image_root), "id", "-g", "kiosk"]).stdout.strip()
    subject = subprocess.Popen(["chroot", f"--userspec={uid}:{gid}", str(image_root), "sleep", "300"], env=env)
    try:
        def allowed(unit: str, verb: str, action: str = "org.freedesktop.systemd1.manage-units") -> bool:
            done = subprocess.run(["chroot", str(image_root), "pkcheck", "--action-id", action, "--process", str(subject.pid),
                                   "--detail", "unit", unit, "--detail", "verb", verb], env=env, capture_output=True, text=True)
            assert done.returncode in (0, 1, 2, 3), done.stderr  # 125 and others: pkcheck itself failed
            return done.returncode == 0

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # polkitd takes a moment to claim its bus name
            done = subprocess.run(["chroot", str(image_root), "pkcheck", "--action-id", "org.freedesktop.systemd1.manage-units",
                                   "--process", str(subject.pid)], env=env, capture_output=True)
            if done.returncode != 125 and done.returncode != 127:
                break
            time.sleep(0.5)
        for action in ("restart-screens", "reboot", "shutdown"):
            assert allowed(f"kiosk-power@{action}.service", "start")
            assert not allowed(f"kiosk-power@{action}.service", "stop")
        assert not allowed("kiosk-power@halt.service", "start")
        assert not allowed("ssh.service", "start")
        assert not allowed("kiosk-power@reboot.service", "start", action="org.freedesktop.login1.reboot")
    finally:
        for proc in (subject, polkitd):
            proc.terminate()
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(bus), signal.SIGTERM)


def _descendant_named(pid: int, name: str) -> int | None:
    """The first process below pid whose command is `name` (the container's init)."""
    todo = [pid]
    while todo:
        current = todo.pop(0)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    if Path(f"/proc/{child}/comm").read_text().strip() == name:
                        return int(child)
                    todo.append(int(child))
    return None


@pytest.mark.needs(shutil.which("systemd-nspawn") is not None, "needs systemd-nspawn (Debian package systemd-container)")
def test_the_image_boots_with_systemd_serves_recovers_from_a_hang_and_powers_off_for_the_box(image_tree: Path, tmp_path: Path) -> None:
    """The image booted by its own systemd in a container: units, sd_notify, watchdog, polkit."""
    port = free_port()
    (image_tree / "etc" / "kiosk" / "kiosk.toml").write_text(
        f'[web]\nhost = "127.0.0.1"\nport = {port}\n[hardware]\nbackend = "fake"\n')
    # A short watchdog, so a hang is noticed within seconds here (60 s on a box).
    dropin = image_tree / "etc" / "systemd" / "system" / "kiosk.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "test.conf").write_text("[Service]\nWatchdogSec=6\nRestartSec=1\n")
    log = (tmp_path / "boot.log").open("w")
    boot = subprocess.Popen(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(image_tree), "--boot", "--console=pipe"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def healthz() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait_for(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.5)
        return False

    try:
        assert wait_for(healthz, 120), "the booted image never answered /healthz"
        init = _descendant_named(boot.pid, "systemd")
        assert init is not None

        def inside(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["nsenter", "-t", str(init), "-a", *argv], capture_output=True, text=True, timeout=120)

        def prop(unit: str, name: str) -> str:
            return inside("systemctl", "show", "-p", name, "--value", unit).stdout.strip()

        assert prop("kiosk.service", "ActiveState") == "active"
        assert prop("kiosk.service", "StatusText").startswith("serving")
        as_the_box = ["systemd-run", "--wait", "--pipe", "--quiet", "-p", "User=kiosk", "-p", "NoNewPrivileges=yes"]

        # the device page's helper reaches its root oneshot through polkit; nothing else does
        assert inside(*as_the_box, "/usr/lib/kiosk/kiosk-power", "restart-screens").returncode == 0
        # (a finished oneshot is unloaded at once, so its journal is the evidence)
        def power_log() -> str:
            return inside("journalctl", "--no-pager", "-o", "cat", "-u", "kiosk-power@restart-screens.service").stdout

        assert wait_for(lambda: "Finished kiosk-power@restart-screens.service" in power_log(), 30), power_log()
        assert inside(*as_the_box, "systemctl", "--no-ask-password", "restart", "kiosk-display.service").returncode != 0
        assert inside(*as_the_box, "/usr/lib/kiosk/kiosk-power", "halt").returncode != 0

        # a box that stops answering is restarted by the watchdog
        hung = prop("kiosk.service", "MainPID")
        assert inside("kill", "-STOP", hung).returncode == 0
        assert wait_for(lambda: prop("kiosk.service", "MainPID") not in ("0", hung) and healthz(), 90)
        assert int(prop("kiosk.service", "NRestarts")) >= 1

        # and the device page can switch the box off
        assert inside(*as_the_box, "/usr/lib/kiosk/kiosk-power", "shutdown").returncode == 0
        boot.wait(timeout=90)
    finally:
        if boot.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(boot.pid, signal.SIGKILL)
            boot.wait()
        log.close()
        shutil.rmtree(dropin, ignore_errors=True)
