"""Configuration: one TOML file plus KIOSK_<SECTION>_<KEY> environment overrides.

Every key is declared once in SETTINGS with its type, default and help text;
docs/configuration.md lists them all (a test keeps the two in step). Nothing
reads configuration at import time: callers ask `load()` and pass the frozen
result along.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kiosk.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One configuration key: where it lives, its type, default and meaning."""

    section: str
    key: str
    type: type
    default: Any
    help: str

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"KIOSK_{self.section.upper()}_{self.key.upper()}"


def _s(name: str, type_: type, default: Any, help_: str) -> Setting:
    section, key = name.split(".", 1)
    return Setting(section, key, type_, default, help_)


# Paths left empty are derived from storage.data_dir (see Config.path()).
SETTINGS: tuple[Setting, ...] = (
    # the point itself
    _s("point.id", str, "point-0001", "This point's id, as enrolled at the county centre."),
    _s("point.name", str, "村级服务点", "This point's name, shown on the screens and the device page."),
    _s("point.township", str, "", "The township (乡镇) the point belongs to, for the centre's reports."),
    # storage
    _s("storage.data_dir", str, "/var/lib/kiosk", "Folder for the store, catalogue, quarantine, outbox and history."),
    _s("storage.spool_dir", str, "", "Folder the satellite receiver writes bags into (default: <data_dir>/spool)."),
    _s("storage.trust_dir", str, "", "Folder of publisher public keys (PEM) whose signatures are trusted (default: <data_dir>/trust)."),
    _s("storage.software_trust_dir", str, "", "Folder of software public keys (PEM); only these may sign software packages (default: <data_dir>/software-trust)."),
    _s("storage.min_free_percent", float, 10.0, "Eviction keeps at least this share of the disk free."),
    _s("storage.max_package_mb", int, 16384, "A package larger than this is rejected as too_large."),
    _s("storage.spool_settle_s", float, 5.0, "A spool bag is taken when no file has changed size for this long."),
    _s("storage.spool_stale_s", float, 86400.0, "A spool bag still incomplete after this long is reported and moved to quarantine."),
    _s("storage.quarantine_keep_days", int, 30, "Quarantined packages older than this are removed (their record is kept)."),
    _s("storage.usb_folder", str, "kiosk", "Folder on a USB disk or disc that holds bags to import."),
    _s("storage.spool_scan_s", float, 3.0, "Seconds between looks at the spool folder for arriving bags."),
    _s("storage.housekeeping_interval_s", int, 3600, "Seconds between expiry and eviction runs."),
    # web
    _s("web.host", str, "0.0.0.0", "Address the box's web server listens on (phones on the local network use it too)."),
    _s("web.port", int, 8080, "Port of the box's web server."),
    _s("web.threads", int, 8, "Worker threads of the web server."),
    _s("web.connection_limit", int, 100, "Connections the web server holds open at most; more wait (the device's own health check has a listener of its own)."),
    _s("web.channel_timeout_s", int, 30, "An idle connection is closed after this many seconds."),
    _s("web.max_request_kb", int, 1024, "Largest request body in KiB; a larger one is refused (413) before it is read."),
    _s("web.language", str, "zh-CN", "Default language of the screens (zh-CN or en)."),
    _s("web.idle_return_s", int, 120, "Seconds without a touch before the screen returns home and shows the attract loop."),
    _s("web.secret_key", str, "", "Secret for session cookies (default: generated once and kept in <data_dir>)."),
    # the administrator's page
    _s("admin.session_minutes", int, 30, "A device page login lasts this long without use."),
    _s("admin.max_login_attempts", int, 5, "Failed logins allowed per 15 minutes before the page waits."),
    _s("admin.power_command", str, "/usr/lib/kiosk/kiosk-power", "Helper for restart-screens, reboot and shutdown (asks systemd, allowed by polkit, to start kiosk-power@ACTION.service)."),
    # hardware
    _s("hardware.backend", str, "auto", "auto (the Pi where its firmware is, else pc), pi, pc or fake."),
    _s("hardware.led_pin", int, 17, "BCM pin of the status LED."),
    _s("hardware.button_pin", int, 27, "BCM pin of the shutdown button (hold 3 s)."),
    _s("hardware.thermal_path", str, "/sys/class/thermal/thermal_zone0/temp", "Thermal zone read for the CPU temperature."),
    # health thresholds and sampling
    _s("health.sample_interval_s", int, 60, "Seconds between health samples."),
    _s("health.temp_warning_c", float, 70.0, "CPU temperature that is a warning."),
    _s("health.temp_fault_c", float, 80.0, "CPU temperature that is a fault."),
    _s("health.disk_warning_percent", float, 85.0, "Disk use that is a warning."),
    _s("health.disk_fault_percent", float, 95.0, "Disk use that is a fault."),
    _s("health.memory_warning_percent", float, 90.0, "Memory use that is a warning."),
    _s("health.display_restarts_warning", int, 3, "Restarts of the touch screen program that are a warning."),
    _s("health.uplink_warning_s", int, 3600, "Seconds without a report reaching the county centre that are a warning."),
    # uplink to the county centre (box side) and the centre server
    _s("centre.url", str, "", "County centre base URL; empty means no uplink."),
    _s("centre.secret", str, "", "This point's enrolment secret."),
    _s("centre.heartbeat_interval_s", int, 300, "Seconds between heartbeat reports."),
    _s("centre.batch_size", int, 200, "Reports sent in one request when catching up."),
    _s("centre.reconnect_delay_s", float, 60.0, "After the line comes back, the backlog waits a random 0 to this many seconds, so a county does not all send at once."),
    _s("centre.backoff_max_s", int, 1800, "After failed sends the box waits longer each time (with jitter), at most this many seconds."),
    _s("centre.db", str, "", "The centre's store: a SQLite path or a postgresql:// URL (default: <data_dir>/centre.sqlite)."),
    _s("centre.host", str, "0.0.0.0", "Address the centre listens on."),
    _s("centre.port", int, 8090, "Port of the centre."),
    _s("centre.offline_after_s", int, 900, "A point is offline once nothing has arrived for this long."),
    _s("centre.county", str, "", "The county (县) this centre serves: points enrolled without --county, and points enrolled before counties existed, belong to it (empty for a province centre)."),
    _s("centre.report_retention_days", int, 90, "Raw reports are kept this many days; their daily roll-ups (per point and day) are kept for good."),
    _s("centre.publisher_key", str, "", "The centre's publisher private key (PEM) for signing packages (default: <data_dir>/publisher.pem)."),
    _s("centre.session_hours", int, 12, "A staff login at the centre ends this many hours after it was made, however busy the page."),
    _s("centre.trust_proxy", bool, False, "The centre sits behind one reverse proxy (TLS): trust its X-Forwarded-For and X-Forwarded-Proto."),
    _s("centre.max_upload_mb", int, 1024, "The largest .zip staff may upload to publish, in MB."),
    _s("centre.max_unpacked_mb", int, 4096, "The most an uploaded .zip may unpack to, in MB (its files are counted as written)."),
    _s("centre.metrics_token", str, "", "When set, the centre's /metrics answers only requests with Authorization: Bearer <this token>."),
    # telecom content sync (box side)
    _s("sync.enabled", bool, True, "Fetch packages from the centre's index when centre.url is set."),
    _s("sync.interval_s", int, 3600, "Seconds between looks at the centre's package index."),
    _s("sync.daily_budget_mb", int, 500, "Megabytes the box may download per day on a metered line."),
    _s("sync.window", str, "", "Hours when downloading is allowed, e.g. 22-06 (empty: any time)."),
    _s("sync.timeout_s", float, 30.0, "Seconds a request to the centre may stall before the download is left for the next look."),
    # local content going up to the centre (box side; upload_max_mb is the centre's cap too)
    _s("uplink.upload_daily_mb", int, 200, "Megabytes of local content the box may upload to the centre per day (within sync.window)."),
    _s("uplink.upload_max_mb", int, 2048, "Largest local content package, in megabytes; the box refuses to add and the centre to receive a larger one."),
    _s("uplink.upload_interval_s", int, 600, "Seconds between looks for local content waiting to go up to the centre."),
    # software updates (box side)
    _s("update.trial_s", int, 300, "A new release must be healthy (serving, jobs running, no crash) within this many seconds, or the box goes back to the one before."),
    _s("update.releases_dir", str, "", "Folder of installed application releases and the `current` link (default: <data_dir>/releases)."),
    _s("update.base_release", str, "/opt/kiosk", "The release the disk image installed (a Python environment); the box runs it until an update is kept."),
    _s("update.check_interval_s", int, 60, "Seconds between looks for a received software package to install."),
    # background jobs
    _s("scheduler.jitter_s", int, 5, "Each periodic job starts up to this many seconds late, so jobs do not all run at once."),
    _s("scheduler.backoff_max_s", int, 3600, "A job that keeps failing is retried less often, at most this many seconds apart."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class Section:
    """The settings of one section, read-only, as attributes."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("configuration is read-only")

    def __repr__(self) -> str:
        return f"Section({self._values!r})"


class Config:
    """A frozen configuration: `cfg.storage.data_dir` or `cfg["storage.data_dir"]`."""

    def __init__(self, values: Mapping[str, Any], source: str = "") -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "source", source)
        sections: dict[str, dict[str, Any]] = {}
        for name, value in self._values.items():
            section, key = name.split(".", 1)
            sections.setdefault(section, {})[key] = value
        object.__setattr__(self, "_sections", {k: Section(v) for k, v in sections.items()})

    def __getattr__(self, section: str) -> Section:
        try:
            return self._sections[section]
        except KeyError:
            raise AttributeError(section) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("configuration is read-only")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def as_dict(self) -> dict[str, Any]:
        """Every key and its value."""
        return dict(self._values)

    def replace(self, **changes: Any) -> "Config":
        """A copy with some keys changed; keys are given as section__key=value."""
        values = dict(self._values)
        for arg, raw in changes.items():
            name = arg.replace("__", ".", 1)
            if name not in _BY_NAME:
                raise ConfigError(f"unknown setting {name}")
            values[name] = _coerce(_BY_NAME[name], raw, f"setting {name}")
        return Config(values, self.source)

    def path(self, name: str) -> Path:
        """A path setting, with empty ones derived from storage.data_dir."""
        value = self._values[name]
        if value:
            return Path(value)
        data = Path(self._values["storage.data_dir"])
        derived = {
            "storage.spool_dir": data / "spool",
            "storage.trust_dir": data / "trust",
            "storage.software_trust_dir": data / "software-trust",
            "update.releases_dir": data / "releases",
            "centre.db": data / "centre.sqlite",
            "centre.publisher_key": data / "publisher.pem",
        }
        if name not in derived:
            raise ConfigError(f"setting {name} is empty")
        return derived[name]

    @property
    def data_dir(self) -> Path:
        return Path(self._values["storage.data_dir"])


def _coerce(setting: Setting, raw: Any, where: str) -> Any:
    """Turn a TOML or environment value into the setting's type, strictly."""
    t = setting.type
    if t is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {raw!r}")
    if t is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a whole number, got {raw!r}")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a whole number, got {raw!r}")
    if t is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {raw!r}")
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: expected text, got {raw!r}")
    return raw


def load(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (`path`, else $KIOSK_CONFIG, else none) and apply overrides."""
    env = os.environ if env is None else env
    path = path or env.get("KIOSK_CONFIG") or None
    values = {s.name: s.default for s in SETTINGS}
    source = ""
    if path:
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"configuration file {path} is not valid TOML: {e}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: [{section}] must be a table of settings")
            for key, raw in table.items():
                name = f"{section}.{key}"
                if name not in _BY_NAME:
                    raise ConfigError(f"{path}: unknown setting {name}")
                values[name] = _coerce(_BY_NAME[name], raw, f"{path}: {name}")
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _coerce(setting, env[setting.env], f"environment {setting.env}")
    _check(values)
    return Config(values, source)


def _check(values: Mapping[str, Any]) -> None:
    """Range checks that a type alone cannot express."""
    if values["hardware.backend"] not in ("auto", "pi", "pc", "fake"):
        raise ConfigError("hardware.backend must be auto, pi, pc or fake")
    if not 0 <= values["storage.min_free_percent"] < 100:
        raise ConfigError("storage.min_free_percent must be from 0 to 99")
    for name in ("web.port", "centre.port"):
        if not 0 <= values[name] <= 65535:
            raise ConfigError(f"{name} must be a port number from 0 to 65535")
    for name in ("centre.heartbeat_interval_s", "centre.offline_after_s", "health.sample_interval_s", "centre.batch_size"):
        if values[name] <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    for name in ("uplink.upload_max_mb", "uplink.upload_interval_s"):
        if values[name] <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    if values["uplink.upload_daily_mb"] < 0:
        raise ConfigError("uplink.upload_daily_mb must be 0 or more")
    if values["storage.spool_scan_s"] <= 0 or values["storage.housekeeping_interval_s"] <= 0 or values["sync.interval_s"] <= 0:
        raise ConfigError("storage.spool_scan_s, storage.housekeeping_interval_s and sync.interval_s must be greater than 0")
    if not re.fullmatch(r"|([01]?\d|2[0-3])-([01]?\d|2[0-4])", values["sync.window"].strip()):
        raise ConfigError("sync.window must be empty or hours like 22-06")
    url = values["centre.url"]
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError("centre.url must start with http:// or https://")


def markdown_table() -> str:
    """The settings as the table docs/configuration.md carries."""
    rows = ["| key | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = "(empty)" if s.default == "" else str(s.default).lower() if s.type is bool else str(s.default)
        rows.append(f"| `{s.name}` | `{s.env}` | `{default}` | {s.help} |")
    return "\n".join(rows)
