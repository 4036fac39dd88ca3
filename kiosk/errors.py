"""One base error for the project; specific ones also inherit the matching builtin."""


class KioskError(Exception):
    """Base of every error Field Kiosk raises on purpose."""


class ConfigError(KioskError, ValueError):
    """A configuration file or override is missing, malformed or out of range."""


class PackageRejected(KioskError, ValueError):
    """A content package was refused; `reason` is one of DESIGN.md's reason codes."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class UnsafePath(PackageRejected):
    """A path in a package would escape its folder or is not a regular file."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("unsafe_path", detail)


class NotFound(KioskError, LookupError):
    """A requested item, file or point does not exist."""
