#!/bin/bash
# Vendors the PDF viewer's library (pdf.js, Apache-2.0) from the npm registry: the box is offline,
# so the screens ship the built files they load, and nothing else of the package.
set -euo pipefail
VERSION="${1:-4.10.38}"
DEST="$(cd "$(dirname "$0")/.." && pwd)/kiosk/web/static/vendor/pdfjs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "pdfjs-dist@$VERSION" >/dev/null && tar xzf "pdfjs-dist-$VERSION.tgz")
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$work/package/LICENSE" "$work/package/build/pdf.min.mjs" "$work/package/build/pdf.worker.min.mjs" "$DEST/"
cp -r "$work/package/cmaps" "$work/package/standard_fonts" "$DEST/"  # CJK encodings, the 14 standard fonts
echo "pdfjs-dist $VERSION from the npm registry (https://www.npmjs.com/package/pdfjs-dist)" > "$DEST/VERSION.txt"
echo "vendored pdfjs-dist $VERSION into $DEST"
