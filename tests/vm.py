"""The Field Kiosk disk image booted in QEMU, for tests/test_image.py.

`session_image()` builds the image with image-build/build.sh (cached by its inputs), copies
it, and puts a technician's settings on its boot partition (kiosk.toml, a publisher key, the
device page's password) with mtools, exactly as a technician would with a card reader.
Each `Vm` boots a copy-on-write overlay of it: UEFI (OVMF or AAVMF) by default, or the
image's own kernel directly (`direct=True`: faster, and the command line can mask units).
The VM has a virtio GPU, a USB tablet, a virtio disk, and user networking restricted to two
forwards on the loopback: the box's port 8080 to a host port, and the guest address
10.0.2.100:8000 to a county centre on the host. QMP gives screen dumps, USB disks and the
power cut (SIGKILL of QEMU: the guest's RAM, page cache included, is lost).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KIOSK_IMAGE_CACHE", "/var/cache/field-kiosk"))
LAYOUT = dict(line.split("=", 1) for line in (REPO / "image-build" / "layout.env").read_text().splitlines()
              if line and not line.startswith("#") and "=" in line)
MIB = 1024 * 1024
ESP_OFFSET = 1 * MIB
CENTRE_GUEST = "10.0.2.100"   # the centre as the box sees it (guestfwd to the host's loopback)
CENTRE_GUEST_PORT = 8000

QEMU = {"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}
FIRMWARE = {
    "amd64": [("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
              ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd")],
    "arm64": [("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd")],
}
TOOLS = ["qemu-img", "mcopy", "mkfs.vfat", "sfdisk", "debugfs", "e2fsck", "mmdebstrap", "socat"]


def missing_tools(arch: str = "amd64") -> list[str]:
    """What this machine lacks to build and boot the image (tools/bootstrap.sh installs it all)."""
    missing = [t for t in [QEMU[arch], *TOOLS] if shutil.which(t) is None]
    if not any(Path(code).exists() for code, _ in FIRMWARE[arch]):
        missing.append("UEFI firmware (ovmf / qemu-efi-aarch64)")
    if os.geteuid() != 0:
        missing.append("root (the image build)")
    return missing


def kvm_works(arch: str = "amd64") -> bool:
    """True when QEMU can really start a KVM guest here (/dev/kvm may exist and still refuse)."""
    if os.environ.get("KIOSK_VM_ACCEL") in ("tcg", "kvm"):
        return os.environ["KIOSK_VM_ACCEL"] == "kvm"
    if arch != "amd64" or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        # running, not just created: some hosts make the VM and then refuse its processor's registers
        probe = subprocess.Popen([QEMU[arch], "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-nodefaults", "-display", "none",
                                  "-monitor", "none", "-no-reboot"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    try:
        probe.wait(3)
        return False          # it gave up: KVM refused the guest
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.wait()
        return True


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command; its output in the error when it fails."""
    done = subprocess.run(argv, text=True, capture_output=True, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done


def build_image(arch: str, out: Path) -> Path:
    """image-build/build.sh --arch ARCH -o OUT (from the cache when the inputs did not change)."""
    started = time.monotonic()
    done = subprocess.run([str(REPO / "image-build" / "build.sh"), "--arch", arch, "-o", str(out)],
                          text=True, capture_output=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"image build failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    sys.stderr.write(f"image {arch}: {time.monotonic() - started:.0f} s ({done.stderr.strip().splitlines()[-1]})\n")
    return out


@dataclass
class Settings:
    """What a technician puts on the boot partition before the first boot."""

    point_id: str = "vm-0001"
    point_name: str = "虚拟机服务点"
    centre_secret: str = ""
    heartbeat_interval_s: int = 60
    publisher_pub: Path | None = None
    admin_password: str = "kiosk-vm-test-pass"
    extra: str = ""

    def toml(self) -> str:
        centre = f'url = "http://{CENTRE_GUEST}:{CENTRE_GUEST_PORT}"\nsecret = "{self.centre_secret}"\n' if self.centre_secret else ""
        return (f'[point]\nid = "{self.point_id}"\nname = "{self.point_name}"\n\n'
                f'[storage]\ndata_dir = "/var/lib/kiosk"\n\n'
                f'[web]\nidle_return_s = 86400\n\n'
                f'[hardware]\nbackend = "auto"\n\n'
                f'[centre]\n{centre}heartbeat_interval_s = {self.heartbeat_interval_s}\n{self.extra}')


def put_on_boot_partition(image: Path, files: dict[str, bytes]) -> None:
    """Copy files onto the image's FAT boot partition (mtools at the partition's offset: no mount)."""
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    target = f"{image}@@{ESP_OFFSET}"
    for name, data in files.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            subprocess.run(["mmd", "-D", "s", "-i", target, "::/" + "/".join(parts[:i])], env=env, capture_output=True)
        src = image.parent / ".boot-file"
        src.write_bytes(data)
        run(["mcopy", "-o", "-i", target, str(src), "::/" + name], env=env)
        src.unlink()


def prepare_image(base: Path, dest: Path, settings: Settings) -> Path:
    """A copy of the built image with the technician's settings on its boot partition."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(["cp", "--sparse=always", str(base), str(dest)])
    files = {"kiosk.toml": settings.toml().encode(), "kiosk-admin-password.txt": settings.admin_password.encode() + b"\n"}
    if settings.publisher_pub is not None:
        files["kiosk-trust/county.pem"] = settings.publisher_pub.read_bytes()
    put_on_boot_partition(dest, files)
    return dest


def partitions(image: Path) -> dict[str, tuple[int, int]]:
    """GPT name -> (byte offset, byte size), from the image's partition table."""
    table = json.loads(run(["sfdisk", "--json", str(image)]).stdout)["partitiontable"]
    sector = table.get("sectorsize", 512)
    return {p.get("name", p["node"]): (p["start"] * sector, p["size"] * sector) for p in table["partitions"]}


def extract_partition(image: Path, name: str, dest: Path) -> Path:
    """One partition of a raw image as its own file (sparse)."""
    offset, size = partitions(image)[name]
    run(["dd", f"if={image}", f"of={dest}", "bs=1M", f"skip={offset // MIB}", f"count={size // MIB}", "conv=sparse", "status=none"])
    return dest


class Qmp:
    """QEMU's monitor protocol through qemu.qmp's synchronous client."""

    def __init__(self, path: Path) -> None:
        from qemu.qmp.legacy import QEMUMonitorProtocol

        self._qmp = QEMUMonitorProtocol(str(path))
        deadline = time.monotonic() + 30
        while True:
            try:
                self._qmp.connect()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def cmd(self, name: str, **args: Any) -> Any:
        return self._qmp.cmd(name, **args)

    def close(self) -> None:
        try:
            self._qmp.close()
        except Exception:
            pass


@dataclass
class Vm:
    """One boot of the image (an overlay on `disk`); a context manager that always ends QEMU."""

    disk: Path
    workdir: Path
    arch: str = "amd64"
    box_port: int = 0
    centre_port: int = 0
    disk_size_gb: int = 8
    direct: bool = False
    cmdline_extra: str = ""
    memory_mb: int = 2048
    accel: str = field(default="")
    proc: subprocess.Popen | None = None
    qmp: Qmp | None = None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.serial = self.workdir / "serial.log"
        self.overlay = self.workdir / "disk.qcow2"
        if not self.accel:
            self.accel = "kvm" if kvm_works(self.arch) else "tcg"

    # --- the machine ----------------------------------------------------------------
    def _firmware(self) -> list[str]:
        for code, vars_ in FIRMWARE[self.arch]:
            if Path(code).exists():
                own = self.workdir / "efivars.fd"
                if not own.exists():
                    shutil.copyfile(vars_, own)
                return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                        "-drive", f"if=pflash,format=raw,unit=1,file={own}"]
        raise RuntimeError(f"no UEFI firmware for {self.arch}")

    def _kernel(self) -> list[str]:
        """The image's own kernel and initramfs, taken from root slot A, on QEMU's command line."""
        boot = self.workdir / "boot"
        if not (boot / "vmlinuz").exists():
            boot.mkdir(exist_ok=True)
            root = extract_partition(self.disk, "rootfs-A", self.workdir / "rootfs-A.img")
            for name in ("vmlinuz", "initrd.img"):
                target = run(["debugfs", "-R", f"stat /{name}", str(root)]).stdout
                link = re.search(r'Fast link dest: "([^"]+)"', target)
                path = "/" + link.group(1).lstrip("/") if link else f"/{name}"
                run(["debugfs", "-R", f"dump {path} {boot / name}", str(root)])
            root.unlink()
        console = "ttyS0" if self.arch == "amd64" else "ttyAMA0"
        append = (f"root=PARTUUID={LAYOUT['ROOT_A_UUID']} rw rootwait panic=10 loglevel=4 systemd.getty_auto=0 console=tty0 "
                  f"console={console},115200 rauc.slot=A {self.cmdline_extra}").strip()
        return ["-kernel", str(boot / "vmlinuz"), "-initrd", str(boot / "initrd.img"), "-append", append]

    def argv(self) -> list[str]:
        qmp = self.workdir / "qmp.sock"
        net = (f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.box_port}-:8080"
               + (f",guestfwd=tcp:{CENTRE_GUEST}:{CENTRE_GUEST_PORT}-cmd:socat STDIO TCP:127.0.0.1:{self.centre_port}"
                  if self.centre_port else ""))
        if self.arch == "amd64":
            machine = ["-machine", "q35", "-cpu", "max" if self.accel == "tcg" else "host"]
            gpu = ["-device", "virtio-vga"]
        else:
            machine = ["-machine", "virt", "-cpu", "max" if self.accel == "tcg" else "host"]
            gpu = ["-device", "virtio-gpu-pci"]
        accel = ["-accel", "kvm"] if self.accel == "kvm" else ["-accel", "tcg,thread=multi"]
        boot = self._kernel() if self.direct else self._firmware()
        return [QEMU[self.arch], *machine, *accel, "-smp", "2", "-m", str(self.memory_mb), "-nodefaults",
                "-display", "none", *gpu, *boot,
                "-drive", f"if=none,id=disk,file={self.overlay},format=qcow2,cache=writeback,discard=unmap",
                "-device", "virtio-blk-pci,drive=disk,id=vda",
                "-device", "qemu-xhci,id=xhci", "-device", "usb-tablet,bus=xhci.0",
                "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
                "-chardev", f"file,id=ser,path={self.serial}", "-serial", "chardev:ser",
                "-qmp", f"unix:{qmp},server=on,wait=off"]

    def start(self) -> "Vm":
        """Power on (a new overlay the first time; the same disk on every later start)."""
        if not self.overlay.exists():
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.disk), str(self.overlay), f"{self.disk_size_gb}G"])
        (self.workdir / "qmp.sock").unlink(missing_ok=True)
        self.serial_mark = self.serial.stat().st_size if self.serial.exists() else 0
        log = (self.workdir / "qemu.log").open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.qmp = Qmp(self.workdir / "qmp.sock")
        except Exception as e:
            self.power_cut()
            raise RuntimeError(f"QEMU did not start: {e}\n{(self.workdir / 'qemu.log').read_text(errors='replace')[-2000:]}") from e
        return self

    def power_cut(self) -> None:
        """Pull the plug: SIGKILL, so nothing the guest had not written reaches the disk."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self._closed()

    def shutdown(self, timeout: float = 300) -> bool:
        """ACPI power button, as a person pressing it; True when the guest powered off by itself."""
        if not self.proc or self.proc.poll() is not None:
            return True
        try:
            assert self.qmp is not None
            self.qmp.cmd("system_powerdown")
            self.proc.wait(timeout)
            clean = True
        except Exception:
            clean = False
        self.power_cut()
        return clean

    def _closed(self) -> None:
        if self.qmp:
            self.qmp.close()
            self.qmp = None

    def __enter__(self) -> "Vm":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.power_cut()

    # --- what it shows --------------------------------------------------------------
    def console(self) -> str:
        """The serial console since this start."""
        try:
            with self.serial.open("rb") as f:
                f.seek(self.serial_mark)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.box_port}{path}"

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
        """Poll `check` until it returns something true; fail with the console's tail otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"QEMU ended while waiting for {what}:\n{self.console()[-3000:]}\n"
                                     f"{(self.workdir / 'qemu.log').read_text(errors='replace')[-2000:]}")
            try:
                found = check()
            except (OSError, urllib.error.URLError, ConnectionError, ValueError):
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout:.0f} s ({self.accel}); console:\n{self.console()[-4000:]}")
            time.sleep(every)

    def wait_ready(self, timeout: float = 900) -> float:
        """Seconds from power on until systemd reported the box READY (kiosk.service started)."""
        self.wait_for("READY (kiosk.service started)",
                      lambda: re.search(r"Started kiosk\.service\b", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", self.console())), timeout)
        return time.monotonic() - self.started

    def wait_healthz(self, timeout: float = 300) -> float:
        self.wait_for("/healthz", lambda: self.get("/healthz", timeout=5)[0] == 200, timeout)
        return time.monotonic() - self.started

    def screendump(self, dest: Path) -> Path:
        """The VM's display as a PNG (QMP screendump)."""
        assert self.qmp is not None
        tmp = dest.with_suffix(".tmp.png")
        self.qmp.cmd("screendump", filename=str(tmp), format="png")
        tmp.replace(dest)
        return dest

    def plug_usb_disk(self, image: Path, name: str = "stick") -> None:
        """Plug a USB disk holding `image` into the running box (QMP blockdev-add + device_add)."""
        assert self.qmp is not None
        self.qmp.cmd("blockdev-add", **{"node-name": name, "driver": "raw", "read-only": True,
                                         "file": {"driver": "file", "filename": str(image), "read-only": True}})
        self.qmp.cmd("device_add", driver="usb-storage", drive=name, id=f"{name}-dev", bus="xhci.0", removable=True)
