#!/bin/sh
# test_install.sh — `make install DESTDIR=... PREFIX=/usr` puts bin/vib3 and share/vib3/vib3.conf
# where they belong, the installed (relocated) binary finds that vib3.conf relative to itself and
# `vib3 hw` (text and --json) names it; a user file in $XDG_CONFIG_HOME wins over it; the binary
# copied alone into an empty directory reports the built-in defaults and still runs;
# the installed binary runs the bundled model by its alias; `make uninstall` removes what install put there.
BUILD=${BUILD:-build}
case $BUILD in /*) V=$BUILD/vib3 ;; *) V=$(pwd)/$BUILD/vib3 ;; esac
T=$(mktemp -d)
pass=0; fail=0; skip=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
trap 'rm -rf "$T"' EXIT
# no config from this machine's user or administrator may leak in
unset VIB3_CONF
export HOME="$T/home" XDG_CONFIG_HOME="$T/xdg"
mkdir -p "$HOME" "$XDG_CONFIG_HOME"

# -o: use the binary already built, never rebuild it here (others may be editing sources)
make -s -o "$V" -o "$BUILD/vib3" install BUILD="$BUILD" DESTDIR="$T/dest" PREFIX=/usr > "$T/install.log" 2>&1 ||
    { bad "make install: $(cat "$T/install.log")"; echo "$pass passed, $fail failed, $skip skipped"; exit 1; }
I=$T/dest/usr
[ -x "$I/bin/vib3" ] && ok || bad "bin/vib3 installed"
cmp -s conf/vib3.conf "$I/share/vib3/vib3.conf" && ok || bad "share/vib3/vib3.conf installed"
[ "$(stat -c %a "$I/share/vib3/vib3.conf")" = 644 ] && ok || bad "vib3.conf mode 644"

if [ -e /etc/vib3/vib3.conf ]; then
    echo "SKIP: /etc/vib3/vib3.conf exists on this machine and comes first - loud skip"; skip=$((skip + 1))
else
    "$I/bin/vib3" hw > "$T/hw.txt" 2>&1
    grep -q "^config  *$I/share/vib3/vib3.conf\$" "$T/hw.txt" && ok || bad "installed vib3 hw names its vib3.conf: $(grep config "$T/hw.txt")"
    "$I/bin/vib3" hw --json > "$T/hw.json" 2>&1
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["config_file"] == sys.argv[2], d["config_file"]' \
        "$T/hw.json" "$I/share/vib3/vib3.conf" && ok || bad "hw --json config_file: $(cat "$T/hw.json")"
    # a user's file wins over the installed defaults
    mkdir -p "$XDG_CONFIG_HOME/vib3" && printf '[runtime]\nthreads = 1\n' > "$XDG_CONFIG_HOME/vib3/vib3.conf"
    "$I/bin/vib3" hw | grep -q "^config  *$XDG_CONFIG_HOME/vib3/vib3.conf\$" && ok || bad "XDG file comes before share/vib3"
    rm -rf "$XDG_CONFIG_HOME/vib3"

    # the binary alone in an empty directory: built-in defaults (equal to conf/vib3.conf: test_config_defaults)
    mkdir -p "$T/alone/bin"
    cp "$V" "$T/alone/bin/vib3"
    (cd "$T/alone" && ./bin/vib3 hw) > "$T/alone.txt" 2>&1
    grep -q "^config  *built-in defaults" "$T/alone.txt" && ok || bad "lone binary reports built-in defaults: $(grep config "$T/alone.txt")"
    "$T/alone/bin/vib3" hw --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["config_file"] is None' && ok ||
        bad "lone binary: config_file null"
    # and it runs the bundled model like the in-tree binary does
    if [ -d models/tinymix-brown ]; then
        "$V" convert --model models/tinymix-brown --output "$T/tiny.vib3" --quant q4 > /dev/null 2>&1
        a=$("$V" run "$T/tiny.vib3" "In the beginning" -n 8 --temp 0 --raw 2>/dev/null)
        b=$("$T/alone/bin/vib3" run "$T/tiny.vib3" "In the beginning" -n 8 --temp 0 --raw 2>/dev/null)
        [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "lone binary generates the same text: '$a' vs '$b'"
    fi
    # the installed binary knows the bundled model's alias (share/vib3/models.conf -> share/vib3/models/)
    "$I/bin/vib3" pull --aliases > "$T/aliases.txt" 2>&1
    grep -q "tinymix.*$I/share/vib3/models/tinymix-brown\|tinymix.*local:models/tinymix-brown" "$T/aliases.txt" && ok ||
        bad "installed vib3 pull --aliases lists tinymix from share/vib3: $(grep tinymix "$T/aliases.txt")"
    if [ -d models/tinymix-brown ]; then
        c=$(VIB3_HOME="$T/store" "$I/bin/vib3" run tinymix "In the beginning" -n 8 --temp 0 --raw 2>/dev/null)
        [ -n "$c" ] && [ "$c" = "$a" ] && ok || bad "installed vib3 run tinymix: '$c' vs '$a'"
    fi
    # the in-tree binary reads the tree's conf/vib3.conf
    "$V" hw | grep -q "^config  *$(pwd -P)/conf/vib3.conf\$" && ok || bad "in-tree binary names conf/vib3.conf: $("$V" hw | grep config)"
fi

make -s uninstall DESTDIR="$T/dest" PREFIX=/usr > "$T/uninstall.log" 2>&1 && ok || bad "make uninstall: $(cat "$T/uninstall.log")"
[ ! -e "$I/bin/vib3" ] && [ ! -e "$I/share/vib3" ] && ok || bad "uninstall removes bin/vib3 and share/vib3"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
