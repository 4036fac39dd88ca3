"""The `kiosk` command: parses arguments, calls the part that does the work, prints.

This is the only module that prints. Bad input ends in one plain sentence on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable, Sequence

from kiosk import __version__
from kiosk import config as config_mod
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

EXIT_FAULT = 70  # EX_SOFTWARE of sysexits.h: the box failed, as opposed to 1 (packages rejected)


def _config(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.load(getattr(args, "config", None))


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))


# --- content ---------------------------------------------------------------


def _progress_bar(label_prefix: str) -> Callable[[int, int, str], None] | None:
    """A one-line progress bar on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    last = [-1.0]

    def show(done: int, total: int, label: str) -> None:
        frac = done / total if total else 1.0
        if frac - last[0] < 0.005 and done < total:
            return  # redraw at most every half percent
        last[0] = frac
        width = 30
        bar = "#" * int(frac * width)
        sys.stderr.write(f"\r{label_prefix} [{bar:<{width}}] {frac:4.0%} {done / 1e6:,.0f}/{total / 1e6:,.0f} MB {label[-30:]:<30}")
        if done >= total:
            sys.stderr.write("\r\033[K")  # gone once complete, so log lines start clean
        sys.stderr.flush()

    return show


def _outcome_line(o: Any) -> str:
    what = f"{o.id} v{o.version}" if o.id else ""
    if o.outcome == "rejected":
        return f"rejected   {o.reason:<13} {what} {o.source}: {o.detail}"
    return f"{o.outcome:<10} {what} {o.source}" + (f" ({o.detail})" if o.detail and o.outcome != "unchanged" else "")


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest bags; one outcome line per package; exit 1 when any was rejected."""
    from kiosk.library import pinyin

    # pypinyin's dictionary (0.43 s to load) then loads in a child, on the other core, while
    # the first package is hashed, instead of before its title can be indexed
    pinyin.use_child_process()
    try:
        return _ingest(args)
    finally:
        pinyin.use_child_process(False)


def _ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kiosk.library import Library, find_bags

    cfg = _config(args)
    roots = [Path(p) for p in args.paths]
    for root in roots:
        if not (root.exists() or root.is_symlink()):
            raise KioskError(f"{root} does not exist")
    if args.source == "usb":
        return _ingest_usb(args, cfg, roots)
    bags = [bag for root in roots for bag in find_bags(root)]
    if not bags:
        raise KioskError("no bags found under " + ", ".join(str(r) for r in roots))
    lib = Library(cfg)
    outcomes = []
    try:
        for n, bag in enumerate(bags, 1):
            progress = _progress_bar(f"{n}/{len(bags)}")
            outcome = lib.ingest(bag, source=args.source, progress=progress)
            if progress:
                sys.stderr.write("\r\033[K")
            outcomes.append(outcome)
            if not args.json:
                print(_outcome_line(outcome), flush=True)
        lib.index_pinyin()
    finally:
        lib.close()
    if args.json:
        _print_json([o.to_json() for o in outcomes])
    return 1 if any(o.rejected for o in outcomes) else 0


def _ingest_usb(args: argparse.Namespace, cfg: config_mod.Config, roots: list[Any]) -> int:
    """A USB disk or disc (udev's import unit): its kiosk/ folder, with progress for the screens; SIGTERM stops between packages."""
    import signal
    import threading

    from kiosk.library import Library, usb

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lib = Library(cfg)
    outcomes: list[Any] = []
    bar = _progress_bar("USB")

    def said(o: Any) -> None:
        if bar:
            sys.stderr.write("\r\033[K")
        if not args.json:
            print(_outcome_line(o), flush=True)

    try:
        for root in roots:
            outcomes += usb.import_folder(cfg, lib, root, stop=stop, on_outcome=said, on_progress=bar)
    finally:
        lib.close()
    if args.json:
        _print_json([o.to_json() for o in outcomes])
    return 1 if any(o.rejected for o in outcomes) else 0


def cmd_status(args: argparse.Namespace) -> int:
    """Health and content summary."""
    import time

    from kiosk import update
    from kiosk.device import health, open_hardware
    from kiosk.library import Library

    cfg = _config(args)
    hardware = open_hardware(cfg, panel=False)  # the running box holds the LED and button pins
    try:
        from kiosk import uplink

        link: dict[str, Any] | None = uplink.status(cfg)
    except Exception as e:  # the uplink's trouble must not hide the box's health
        log.debug("event=uplink_status_unavailable error=%r", e)
        link = None
    try:
        snap = health.snapshot(hardware, cfg, link)
    finally:
        hardware.close()
    lib = Library(cfg)
    try:
        content = lib.summary()
    finally:
        lib.close()
    from kiosk.library import local

    mine = local.status(cfg)
    if args.json:
        _print_json({"point": {"id": cfg.point.id, "name": cfg.point.name}, "health": snap, "content": content, "uplink": link,
                     "local": mine, "software": update.status(cfg)})
        return 0
    words = {"ok": "正常 ok", "warning": "注意 warning", "fault": "故障 fault", "unknown": "不明 unknown"}
    print(f"{cfg.point.name} ({cfg.point.id})")
    print(f"状态 status: {words[snap['status']]} - {snap['message']} / {snap['message_en']}")
    for key, title, title_en in health.SIGNALS:
        s = snap["signals"][key]
        value = f" [{s['value']}]" if s["value"] else ""
        print(f"  {title} {title_en}: {words[s['level']]}{value} {s['zh']}")
    gib = 2**30
    last = content.get("last_ingest")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last)) if last else "-"
    print(
        f"内容 content: {content['items']} 个节目 items, {content['bytes'] / gib:.2f} GB, "
        f"拒收 quarantined {content['quarantined']}, 剩余 free {content['free_bytes'] / gib:.1f} / {content['total_bytes'] / gib:.1f} GB, "
        f"最近收到 last ingest {when}"
    )
    sw = update.status(cfg)
    last_sw = sw["last"] or {}
    print(f"软件 software: {sw['version']} ({sw['state']})"
          + (f", 上次更新 last update {last_sw.get('version')} {last_sw.get('outcome')} {last_sw.get('reason') or ''}" if last_sw else ""))
    c = mine["counts"]
    print(f"本地内容 local content: 待上传 waiting {c['pending'] + c['uploading']}, 待审核 in review {c['sent']}, "
          f"已通过 approved {c['approved']}, 未通过 rejected {c['rejected']}")
    for e in mine["items"]:
        if e["state"] == "rejected":
            print(f"  未通过 rejected {e['id']} {e['title']}: {e['reason']}")
    return 0


def cmd_local_add(args: argparse.Namespace) -> int:
    """Make files into a local package signed by this point, on the screens at once."""
    from pathlib import Path

    from kiosk.library import Library, local

    cfg = _config(args)
    lib = Library(cfg)
    try:
        made = local.add(cfg, lib, [Path(f) for f in args.files], args.title, args.category, args.description,
                         progress=_progress_bar("添加 adding"))
    finally:
        lib.close()
    if args.json:
        print(json.dumps(made))
    else:
        print(f"已添加 added {made['id']} v{made['version']}：已在本机屏幕上，有线路时会送县中心审核。")
    return 0


def _package_progress() -> Callable[[int, int, str], None] | None:
    """A one-line byte counter on stderr while hashing, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    last = [-1]

    def show(done: int, total: int, label: str) -> None:
        pct = 100 * done // total if total else 100
        if pct != last[0]:
            last[0] = pct
            end = "\n" if done >= total else ""
            print(f"\r{pct:3d}%  {done >> 20} / {total >> 20} MiB", end=end, file=sys.stderr, flush=True)

    return show


def cmd_package_keygen(args: argparse.Namespace) -> int:
    """Write a new Ed25519 publisher key pair."""
    from pathlib import Path

    from kiosk.library.signing import generate_key

    pub = generate_key(Path(args.out))
    print(f"private key: {args.out} (keep it secret)")
    print(f"public key:  {pub} (copy it into each box's trust folder)")
    return 0


def cmd_package_build(args: argparse.Namespace) -> int:
    """Build a signed package from a folder with kiosk.json and data/."""
    from pathlib import Path

    from kiosk.library.package import build_package

    out = build_package(Path(args.src), Path(args.key), Path(args.output), progress=_package_progress())
    print(f"built {out}")
    return 0


def cmd_package_verify(args: argparse.Namespace) -> int:
    """Exit 0 only for a package the box would accept (or a valid bag with --bag-only)."""
    from pathlib import Path

    from kiosk.errors import PackageRejected
    from kiosk.library.bag import validate_bag
    from kiosk.library.package import verify_package

    path = Path(args.path)
    warnings: list[str] = []
    try:
        if args.bag_only:
            warnings = validate_bag(path, progress=_package_progress())
        else:
            cfg = _config(args)
            trust = Path(args.trust) if args.trust else cfg.path("storage.trust_dir")
            limit = cfg.storage.max_package_mb * (1 << 20)
            software = Path(args.software_trust) if args.software_trust else cfg.path("storage.software_trust_dir")
            record = verify_package(path, trust, progress=_package_progress(), warnings=warnings, max_bytes=limit,
                                    software_trust_dir=software)
    except PackageRejected as e:
        print(f"{path}: rejected ({e.reason}): {e.detail}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"{path}: warning: {w}", file=sys.stderr)
    if args.bag_only:
        print(f"{path}: valid bag")
    else:
        print(f"{path}: accepted: {record.id} version {record.version}")
    return 0


# --- the box -----------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """The box: web server, scheduler, hardware; stops cleanly on SIGTERM."""
    from kiosk import box

    cfg = _config(args)
    try:
        return box.run(cfg)
    except OSError as e:
        if e.filename:  # a folder or file of the box, not the listening socket
            raise KioskError(f"cannot start: {e.strerror or e}: {e.filename}") from None
        raise KioskError(f"cannot serve on {cfg.web.host}:{cfg.web.port}: {e.strerror or e}") from None


def cmd_launch(args: argparse.Namespace) -> int:
    """Start the release the update state names (kiosk.service's ExecStart); rolls back a failed trial."""
    from kiosk.update import launch

    cfg = _config(args)
    try:
        return launch.launch(getattr(args, "config", None), cfg)
    except OSError as e:
        raise KioskError(f"cannot start the release: {e.strerror or e}: {e.filename}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    """A box with sample content and a centre with simulated points, on loopback."""
    from kiosk import demo

    return demo.run_demo(args, say=lambda line: print(line, flush=True))


def cmd_admin_set_password(args: argparse.Namespace) -> int:
    """Set the device page's password from standard input."""
    import getpass

    from kiosk.web import auth

    cfg = _config(args)
    if sys.stdin.isatty():
        password = getpass.getpass("新密码 new password: ")
        if getpass.getpass("再输一次 again: ") != password:
            raise KioskError("the two passwords differ; nothing was changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise KioskError("no password on standard input; nothing was changed")
    auth.set_password(cfg, password)
    print(f"密码已设置 the device page's password is set ({auth.password_path(cfg)})")
    return 0


def cmd_admin_setup_code(args: argparse.Namespace) -> int:
    """Print the one-time code that lets the device page set its first password."""
    from kiosk.web import auth

    cfg = _config(args)
    if auth.has_password(cfg):
        raise KioskError("the device page's password is set already; the setup code is only for the first visit "
                         "(to replace the password use `kiosk admin set-password`)")
    code = auth.setup_code(cfg)
    print(f"设置码 setup code: {code[:3]} {code[3:]}")
    return 0


def cmd_uplink_export(args: argparse.Namespace) -> int:
    """Write the heartbeat outbox to a folder (a USB disk) for the centre to import."""
    from kiosk import uplink
    from kiosk.device import open_hardware

    cfg = _config(args)
    library = None
    try:
        from kiosk.library import Library

        library = Library(cfg)
    except Exception as e:  # the reports still go out, only without the content summary
        log.warning("event=export_without_library error=%r", e)
    hardware = open_hardware(cfg, panel=False)

    def progress(done: int, total: int) -> None:
        print(f"\r写入报告 writing reports: {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)

    try:
        summary = uplink.export_outbox(cfg, args.dir, library=library, hardware=hardware, progress=progress)
    finally:
        hardware.close()
        if library is not None:
            library.close()
    if getattr(args, "json", False):
        _print_json(summary)
    else:
        print(f"已写入 {summary['reports']} 份报告到 {summary['dir']}（新写 {summary['files_written']} 个文件，"
              f"未变 {summary['files_unchanged']} 个）。请把 U 盘带到县中心导入。")
        print(f"Wrote {summary['reports']} reports to {summary['dir']} ({summary['files_written']} files written, "
              f"{summary['files_unchanged']} unchanged). Take the disk to the county centre to import.")
    return 0


# --- the county centre ---------------------------------------------------------


def cmd_centre_run(args: argparse.Namespace) -> int:
    """The county centre server."""
    from kiosk.centre import server

    return server.run(_config(args), on_ready=lambda c: print(f"kiosk centre listening on {c.url}", flush=True))


def _centre_store(args: argparse.Namespace) -> Any:
    from kiosk.centre.store import Store

    return Store.from_config(_config(args))


def cmd_centre_enroll(args: argparse.Namespace) -> int:
    """Enrol a point; print its id and secret."""
    store = _centre_store(args)
    already = store.secret(args.point_id) is not None
    secret = store.enroll(args.point_id, name=args.name, township=args.township, county=args.county)
    if already:  # re-enrolling is how a replaced box gets a secret, but the old box is cut off
        print(f"kiosk: point {args.point_id} was already enrolled; its old secret no longer works", file=sys.stderr)
    if args.json:
        print(json.dumps({"point_id": args.point_id, "secret": secret}))
    else:
        print(f"point {args.point_id} enrolled; put this in its configuration as centre.secret:\n{secret}")
    return 0


def cmd_centre_points(args: argparse.Namespace) -> int:
    """Every point with its status."""
    from kiosk import clock
    from kiosk.centre import stats

    cfg = _config(args)
    store = _centre_store(args)
    points = stats.overview(store, store.rules(cfg), clock.now())
    if args.json:
        keys = ("id", "name", "county", "township", "status", "last_seen", "last_seq")
        _print_json([{**{k: p[k] for k in keys}, "software": {"version": p["software"], "state": p["software_state"]}}
                     for p in points])
        return 0
    for p in points:
        seen = stats.local_time(p["last_seen"]) or "-"
        print(f"{p['id']:<24} {p['status']:<8} {seen:<17} {p['county']} {p['township']} {p['name']}")
    return 0


def cmd_centre_import(args: argparse.Namespace) -> int:
    """Import heartbeat reports a box exported to a USB disk."""
    from kiosk.centre.importer import import_dir
    from kiosk.centre.uploads import Uploads

    cfg = _config(args)
    store = _centre_store(args)

    def progress(done: int, total: int, name: str) -> None:
        print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)

    try:
        result = import_dir(store, args.dir, progress, uploads=Uploads(cfg, store))
    except FileNotFoundError as e:
        raise KioskError(str(e)) from None
    print(f"imported {result['reports']} reports from {result['files']} files ({result['stored']} new), "
          f"{result['uploads']} local packages")
    for r in result["refused"]:  # type: ignore[union-attr]
        print(f"refused {r['file']}: {r['error']}: {r['detail']}")
    return 1 if result["refused"] else 0


def _uploads(args: argparse.Namespace) -> Any:
    from kiosk.centre.uploads import Uploads

    return Uploads(_config(args), _centre_store(args))


def cmd_centre_uploads(args: argparse.Namespace) -> int:
    """Local content the points sent up, with its state."""
    rows = _uploads(args).list(args.state or None)
    keys = ("id", "version", "point_id", "township", "state", "title", "category", "size", "received", "reason")
    if args.json:
        _print_json([{k: u[k] for k in keys} for u in rows])
        return 0
    for u in rows:
        print(f"{u['id']:<32} {u['state']:<10} {u['township'] or '-':<10} {u['title']}" + (f" ({u['reason']})" if u["reason"] else ""))
    return 0


def cmd_centre_uploads_approve(args: argparse.Namespace) -> int:
    """Approve an upload: re-signed by the centre and listed in the package index."""
    from kiosk.centre.publish import Publisher

    uploads = _uploads(args)
    townships = [t for t in (args.townships or "").split(",") if t.strip()]
    entry = uploads.approve(Publisher(uploads.cfg, uploads.store), args.id, townships, user="cli")
    where = "、".join(townships) if townships else "全部服务点 every point"
    print(f"已通过 approved {args.id}: published as {entry['id']} v{entry['version']} for {where}")
    return 0


def cmd_centre_uploads_reject(args: argparse.Namespace) -> int:
    """Reject an upload with a reason the point will see."""
    _uploads(args).reject(args.id, args.reason, user="cli")
    print(f"未通过 rejected {args.id}: {args.reason}")
    return 0


def cmd_centre_simulate(args: argparse.Namespace) -> int:
    """Send realistic traffic from simulated points to a centre."""
    from kiosk.centre import simulate

    cfg = _config(args)
    url = args.url or f"http://127.0.0.1:{cfg.centre.port}"
    store = _centre_store(args)
    if args.province or args.live:
        return _simulate_province(args, store, url)
    simulate.wait_until_up(url)
    totals = simulate.run(
        store, url, args.points, days=args.days, rounds=args.rounds, interval_s=args.interval,
        step_s=cfg.centre.heartbeat_interval_s, say=lambda line: print(line, flush=True),
    )
    print(f"done: {totals['sent']} reports sent, {totals['acked']} acknowledged, {totals['rounds']} rounds")
    return 0


def _simulate_province(args: argparse.Namespace, store: Any, url: str) -> int:
    """`simulate --province N` fills the database in bulk; `--live K` then drives K of its points."""
    from kiosk.centre import simulate

    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.province:
        if args.province < 1 or args.days < 0:
            raise KioskError("--province needs a number of points, 1 or more, and --days 0 or more")
        done = simulate.fill_province(store, args.province, days=int(args.days), say=say)
        print(f"province filled: {done['points']} points, {done['days']} daily roll-ups in {done['seconds']} s")
    if args.live:
        simulate.wait_until_up(url)
        points = simulate.sample(store, args.live)
        totals = simulate.drive(url, points, max(1, args.rounds), per_request=args.per_request,
                                workers=args.workers, say=say)
        rate = totals["acked"] / totals["seconds"] if totals["seconds"] else 0
        print(f"live: {totals['acked']} reports acknowledged in {totals['requests']} requests, "
              f"{totals['seconds']} s ({rate:.0f} reports/s)")
    return 0


def cmd_centre_add_user(args: argparse.Namespace) -> int:
    """Add or update a centre staff login (password from standard input)."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("密码 password: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    _centre_store(args).set_user(args.username, password, scope=args.scope)
    print(f"login {args.username} saved (scope {args.scope})")
    return 0


def cmd_centre_token_add(args: argparse.Namespace) -> int:
    """Make an API token for scripts; print it (it is shown once)."""
    print(_centre_store(args).new_token(args.name, scope=args.scope))
    return 0


# --- argument parsing ----------------------------------------------------------

_SCOPE_HELP = "what it may see and act on: province, county:<name> or township:<county>/<name> (default province)"


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(prog="kiosk", description="Field Kiosk: the village point box and its county centre.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--config", metavar="F", help="TOML configuration file (default: $KIOSK_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(parent: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str, config: bool = True) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_, description=help_)
        if config:
            # SUPPRESS: an absent sub-command --config must not hide `kiosk --config F COMMAND`
            p.add_argument("--config", metavar="F", default=argparse.SUPPRESS, help="TOML configuration file (default: $KIOSK_CONFIG)")
        p.set_defaults(func=func)
        return p

    p = add(sub, "demo", cmd_demo, "run a box with sample content and a county centre with simulated points, on loopback")
    p.add_argument("--data", metavar="DIR", help="keep the demo's data here (default: a temporary folder)")
    p.add_argument("--port", type=int, default=8080, help="the box's port (default 8080; 0 picks a free one)")
    p.add_argument("--centre-port", type=int, default=8090, help="the centre's port (default 8090; 0 picks a free one)")
    p.add_argument("--points", type=int, default=30, help="simulated points reporting to the centre")

    add(sub, "run", cmd_run, "run the box: web server, scheduler and hardware")
    add(sub, "launch", cmd_launch, "start the box's current release (after an update: try it, keep it or go back)")

    p = add(sub, "ingest", cmd_ingest, "ingest bags (folders or .tar), or every bag under a folder")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    p.add_argument("--source", choices=("usb", "spool", "telecom", "cli"), default="cli", help=argparse.SUPPRESS)

    p = add(sub, "status", cmd_status, "health and content summary")
    p.add_argument("--json", action="store_true", help="print as JSON")

    pkg = sub.add_parser("package", help="publisher's side: keys, building and verifying packages")
    pkg_sub = pkg.add_subparsers(dest="package_command", metavar="ACTION", required=True)
    p = add(pkg_sub, "keygen", cmd_package_keygen, "write a new Ed25519 key pair (OUT and OUT.pub)", config=False)
    p.add_argument("out", metavar="OUT")
    p = add(pkg_sub, "build", cmd_package_build, "build a signed package from a folder", config=False)
    p.add_argument("src", metavar="SRC", help="folder with kiosk.json and the payload (in data/ or at the top)")
    p.add_argument("--key", required=True, metavar="K", help="publisher private key (PEM)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="package to write (a folder, or a file ending in .tar)")
    p = add(pkg_sub, "verify", cmd_package_verify, "exit 0 only for a package the box would accept")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--bag-only", action="store_true", help="judge the BagIt layer alone")
    p.add_argument("--trust", metavar="DIR", help="trust folder (default: storage.trust_dir)")
    p.add_argument("--software-trust", metavar="DIR", help="software trust folder (default: storage.software_trust_dir)")

    loc = sub.add_parser("local", help="local content made at this point")
    loc_sub = loc.add_subparsers(dest="local_command", metavar="ACTION", required=True)
    p = add(loc_sub, "add", cmd_local_add, "make video, pictures, audio or a PDF into a local package on the screens")
    p.add_argument("files", nargs="+", metavar="FILES")
    p.add_argument("--title", required=True, metavar="T", help="the title villagers see")
    p.add_argument("--category", default="local", metavar="C", help="the topic (default: local, 本地资讯)")
    p.add_argument("--description", default="", metavar="D", help="a few words about it")
    p.add_argument("--json", action="store_true", help="print {\"id\", \"version\"} as JSON")

    adm = sub.add_parser("admin", help="the device page")
    adm_sub = adm.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    add(adm_sub, "set-password", cmd_admin_set_password, "set the device page's password, read from standard input")
    add(adm_sub, "setup-code", cmd_admin_setup_code, "print the one-time code the device page's first visit asks for")

    up = sub.add_parser("uplink", help="reports to the county centre")
    up_sub = up.add_subparsers(dest="uplink_command", metavar="ACTION", required=True)
    p = add(up_sub, "export", cmd_uplink_export, "write the outbox to a folder for the centre to import")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    cen = sub.add_parser("centre", help="the county centre")
    cen_sub = cen.add_subparsers(dest="centre_command", metavar="ACTION", required=True)
    add(cen_sub, "run", cmd_centre_run, "run the county centre server")
    p = add(cen_sub, "enroll", cmd_centre_enroll, "enrol a point and print its secret")
    p.add_argument("point_id", metavar="POINT_ID")
    p.add_argument("--name", default="", help="the point's name")
    p.add_argument("--township", default="", help="the township it belongs to")
    p.add_argument("--county", default="", help="the county it belongs to (default: centre.county)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p = add(cen_sub, "points", cmd_centre_points, "every point with its status")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p = add(cen_sub, "import", cmd_centre_import, "import reports exported from a box")
    p.add_argument("dir", metavar="DIR")
    p = add(cen_sub, "uploads", cmd_centre_uploads, "local content the points sent up, to review")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--state", choices=("receiving", "pending", "approved", "rejected"), help="only this state")
    upl_sub = p.add_subparsers(dest="uploads_command", metavar="ACTION")
    q = add(upl_sub, "approve", cmd_centre_uploads_approve, "re-sign an upload and list it in the package index")
    q.add_argument("id", metavar="ID")
    q.add_argument("--townships", metavar="T,...", default="", help="only these townships (default: every point)")
    q = add(upl_sub, "reject", cmd_centre_uploads_reject, "refuse an upload with a reason the point will see")
    q.add_argument("id", metavar="ID")
    q.add_argument("--reason", required=True, metavar="R", help="why, in words the point understands")
    p = add(cen_sub, "simulate", cmd_centre_simulate, "send traffic from simulated points to a centre")
    p.add_argument("--points", type=int, default=50)
    p.add_argument("--url", default="", help="centre URL (default: from the configuration)")
    p.add_argument("--days", type=float, default=0, help="backfill this many days of history first")
    p.add_argument("--rounds", type=int, default=0, help="stop after this many rounds (0: run until stopped)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between live rounds (default 5)")
    p.add_argument("--province", type=int, default=0, metavar="N",
                   help="fill the database at once with N points in counties and townships and --days of daily roll-ups")
    p.add_argument("--live", type=int, default=0, metavar="K",
                   help="then send --rounds rounds of live reports from K enrolled points")
    p.add_argument("--per-request", type=int, default=1, help="reports in each live request (default 1)")
    p.add_argument("--workers", type=int, default=8, help="live requests at once (default 8)")
    p = add(cen_sub, "add-user", cmd_centre_add_user, "add a staff login; the password is read from standard input")
    p.add_argument("username")
    p.add_argument("--scope", default="province", help=_SCOPE_HELP)
    tok = cen_sub.add_parser("token", help="API tokens for scripts (Authorization: Bearer <token>)")
    tok_sub = tok.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    p = add(tok_sub, "add", cmd_centre_token_add, "make an API token and print it (shown once)")
    p.add_argument("name")
    p.add_argument("--scope", default="province", help=_SCOPE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kiosk` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    # Services log every event for journald; a person at a terminal sees outcomes, not events.
    quiet = sys.stderr.isatty() and func not in (cmd_run, cmd_demo, cmd_centre_run, cmd_centre_simulate)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if not func:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KioskError as e:
        print(f"kiosk: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        # A fault of the box, not bad input: logged in full for journald, and an exit status
        # of its own, so a unit that accepts 1 (some packages rejected) still shows it failed.
        log.exception("event=command_failed command=%s", getattr(func, "__name__", func))
        print("kiosk: an unexpected error stopped the command; see the log", file=sys.stderr)
        return EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
