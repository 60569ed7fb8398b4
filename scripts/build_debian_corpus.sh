#!/usr/bin/env bash
# Build a real, offline, five-language code corpus from Debian packages, with licences.
#
#   scripts/build_debian_corpus.sh OUT_DIR            # installs the packages (needs root + apt)
#   NO_INSTALL=1 scripts/build_debian_corpus.sh OUT   # use only what is already installed
#   CSHARP_SRC=/path/to/cs/tree scripts/build_debian_corpus.sh OUT   # add your own C# tree
#
# Layout written (read it with open_corpus({"kind": "files", "path": OUT})):
#   OUT/<language>/<package>/...   source files, language by extension (extension-less libstdc++
#                                  headers are copied as .hpp so the reader sees them as C++)
#   OUT/licences/<package>.copyright   the package's /usr/share/doc/<pkg>/copyright
#   OUT/corpus.json                {"sources": [{"path", "package", "version", "language",
#                                  "licence", "files", "bytes"}], "licence": "unknown"}
# pretrain.corpora.FileCorpus gives every document the licence of the longest matching "path".
#
# Sources (Debian bookworm names; check others with `apt-cache search`):
#   python : libpython3.11-stdlib (stdlib, /usr/lib/python3.11) + libpython3.11-testsuite (tests)
#   go     : golang-1.19-src (/usr/lib/go-1.19/src)
#   cpp    : libstdc++-12-dev (/usr/include/c++/12) + libboost1.74-dev (/usr/include/boost)
#   php    : php-symfony-* components (/usr/share/php/Symfony)
#   csharp : Debian ships no C# sources in binary packages; with deb-src lines in the apt sources
#            the script runs `apt-get source` on CSHARP_PACKAGES (default: dnlib mono-addins
#            nunit) and keeps their .cs files; otherwise pass a tree with CSHARP_SRC.
set -euo pipefail

OUT=${1:?usage: build_debian_corpus.sh OUT_DIR}
NO_INSTALL=${NO_INSTALL:-0}
PY=${PY:-3.11}
GO=${GO:-1.19}
GCC=${GCC:-12}
BOOST=${BOOST:-1.74}
CSHARP_PACKAGES=${CSHARP_PACKAGES:-"dnlib mono-addins nunit"}
SYMFONY=${SYMFONY:-"php-symfony-console php-symfony-http-foundation php-symfony-yaml php-symfony-finder php-symfony-string php-symfony-process php-symfony-filesystem php-symfony-validator php-symfony-routing php-symfony-dependency-injection"}

mkdir -p "$OUT/licences"
OUT=$(cd "$OUT" && pwd)
MANIFEST_ROWS=$(mktemp)
trap 'rm -f "$MANIFEST_ROWS"' EXIT

log() { printf '[build_debian_corpus] %s\n' "$*" >&2; }

install_packages() {
  if [ "$NO_INSTALL" = 1 ]; then return; fi
  local want=("python$PY" "libpython$PY-testsuite" "golang-$GO-src" "libstdc++-$GCC-dev" "libboost$BOOST-dev")
  # shellcheck disable=SC2206
  want+=($SYMFONY)
  log "installing: ${want[*]}"
  apt-get install -y --no-install-recommends "${want[@]}" >&2
}

# Copyright file of a package (Debian may symlink a -dev doc dir to its -base package).
copyright_of() {
  local pkg=$1 f
  for f in "/usr/share/doc/$pkg/copyright" "$(readlink -f "/usr/share/doc/$pkg" 2>/dev/null)/copyright"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  case $pkg in libstdc++-*-dev) f="/usr/share/doc/gcc-$GCC-base/copyright"; [ -f "$f" ] && { echo "$f"; return; } ;; esac
  echo ""
}

# Licence names: the short names of the "License:" fields of a machine-readable (DEP-5)
# copyright file, otherwise the well-known licence names the text mentions.
licence_of() {
  local file=$1 names=""
  if [ -z "$file" ] || [ ! -f "$file" ]; then echo "unknown"; return; fi
  if head -1 "$file" | grep -q '^Format:'; then
    names=$(grep -E '^License:[[:space:]]*[^[:space:]]' "$file" | sed -E 's/^License:[[:space:]]*//; s/[[:space:]]+$//' \
            | awk 'NF <= 4' | sort -u | paste -sd ';' - || true)
  fi
  if [ -z "$names" ]; then
    names=$(grep -oE 'Python Software Foundation License|PSF[- ]?(License|2(\.0)?)|GNU (Lesser |Library )?General Public License|(L)?GPL-?[0-9.]+\+?|Apache License,? (Version )?2\.0|Apache-2\.0|MIT|BSD-[0-9]-[Cc]lause|Boost Software License|BSL-1\.0|GCC Runtime Library Exception|X11|Zlib|PSF LICENSE AGREEMENT|PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2' "$file" \
            | sed -E 's/\.$//; s/^(PSF LICENSE AGREEMENT|PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2)$/PSF-2.0/' | sort -u | paste -sd ';' - || true)
  fi
  echo "${names:-see copyright file}"
}

# copy_tree PACKAGE LANGUAGE SRC_DIR FIND_EXPR... : copy matching files below SRC_DIR.
copy_tree() {
  local pkg=$1 lang=$2 src=$3; shift 3
  if [ ! -d "$src" ]; then log "skip $pkg: $src not found"; return; fi
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then log "skip $pkg: not installed"; return; fi
  local dest="$OUT/$lang/$pkg"
  mkdir -p "$dest"
  if [ "$lang" != cpp ]; then  # plain copy, keeping the tree
    (cd "$src" && find . -type f \( "$@" \) -print0 | xargs -0 -r cp --parents -t "$dest")
    record "$pkg" "$lang" "$dest"
    return
  fi
  (cd "$src" && find . -type f \( "$@" \) -print0) | while IFS= read -r -d '' rel; do
    local target="$dest/${rel#./}"
    case $lang in
      cpp) case $target in *.h|*.hpp|*.hh|*.hxx|*.cc|*.cpp|*.cxx|*.tcc|*.ipp) ;; *) target="$target.hpp" ;; esac
           case $target in *.h) target="${target%.h}.hpp" ;; esac ;;
    esac
    mkdir -p "$(dirname "$target")"
    cp "$src/${rel#./}" "$target"
  done
  record "$pkg" "$lang" "$dest"
}

record() {
  local pkg=$1 lang=$2 dest=$3
  local copyright version licence files bytes
  copyright=$(copyright_of "$pkg")
  [ -n "$copyright" ] && cp "$copyright" "$OUT/licences/$pkg.copyright"
  version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo "source")
  licence=$(licence_of "$copyright")
  files=$(find "$dest" -type f | wc -l)
  bytes=$(du -sb "$dest" | cut -f1)
  log "$lang/$pkg: $files files, $bytes bytes, licence: $licence"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$lang/$pkg" "$pkg" "$version" "$lang" "$licence" "$files:$bytes" >> "$MANIFEST_ROWS"
}

install_packages

# Python: the standard library and its test suite (same source package, PSF licence).
copy_tree "libpython$PY-stdlib" python "/usr/lib/python$PY" -name '*.py' -not -path './test/*' -not -path './site-packages/*' -not -path './dist-packages/*'
copy_tree "libpython$PY-testsuite" python "/usr/lib/python$PY/test" -name '*.py'

# Go: the standard library sources (testdata is data, not idiomatic code).
copy_tree "golang-$GO-src" go "/usr/lib/go-$GO/src" -name '*.go' -not -path '*/testdata/*'

# C++: libstdc++ headers (mostly extension-less) and Boost headers.
copy_tree "libstdc++-$GCC-dev" cpp "/usr/include/c++/$GCC" -type f
copy_tree "libboost$BOOST-dev" cpp "/usr/include/boost" -name '*.hpp'

# PHP: Symfony components.
for pkg in $SYMFONY; do
  if dpkg -s "$pkg" >/dev/null 2>&1; then
    dir=$(dpkg -L "$pkg" | grep -E '^/usr/share/php/Symfony/Component/[^/]+$' | head -1 || true)
    [ -n "$dir" ] && copy_tree "$pkg" php "$dir" -name '*.php' -not -path '*/Tests/*'
  else
    log "skip $pkg: not installed"
  fi
done

# C#: source packages (needs deb-src lines) or a user tree.
if [ -n "${CSHARP_SRC:-}" ]; then
  dest="$OUT/csharp/local"
  mkdir -p "$dest"
  (cd "$CSHARP_SRC" && find . -name '*.cs' -print0 | xargs -0 -I{} cp --parents {} "$dest")
  record "local" csharp "$dest"
elif grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  work=$(mktemp -d)
  for pkg in $CSHARP_PACKAGES; do
    (cd "$work" && apt-get source -q "$pkg" >&2) || { log "skip $pkg: apt-get source failed"; continue; }
    srcdir=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name "${pkg}*" | head -1)
    [ -z "$srcdir" ] && continue
    dest="$OUT/csharp/$pkg"
    mkdir -p "$dest"
    (cd "$srcdir" && find . -name '*.cs' -not -path '*/debian/*' -print0 | xargs -0 -I{} cp --parents {} "$dest")
    cp "$srcdir/debian/copyright" "$OUT/licences/$pkg.copyright" 2>/dev/null || true
    licence=$(licence_of "$srcdir/debian/copyright")
    files=$(find "$dest" -type f | wc -l); bytes=$(du -sb "$dest" | cut -f1)
    version=$(basename "$srcdir" | sed -E "s/^$pkg-//")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "csharp/$pkg" "$pkg" "$version" csharp "$licence" "$files:$bytes" >> "$MANIFEST_ROWS"
  done
  rm -rf "$work"
else
  log "no C#: add deb-src lines to the apt sources (then apt-get update) or set CSHARP_SRC"
fi

# corpus.json (atomic: write then rename).
python3 - "$MANIFEST_ROWS" "$OUT/corpus.json" <<'PY'
import json, os, sys
rows = []
for line in open(sys.argv[1], encoding="utf-8"):
    path, pkg, version, lang, licence, stats = line.rstrip("\n").split("\t")
    files, nbytes = stats.split(":")
    rows.append({"path": path, "package": pkg, "version": version, "language": lang,
                 "licence": licence, "files": int(files), "bytes": int(nbytes),
                 "copyright": f"licences/{pkg}.copyright"})
tmp = sys.argv[2] + ".tmp"
with open(tmp, "w", encoding="utf-8") as fh:
    json.dump({"builder": "scripts/build_debian_corpus.sh", "licence": "unknown", "sources": rows}, fh, indent=2)
os.replace(tmp, sys.argv[2])
PY
log "wrote $OUT/corpus.json"
