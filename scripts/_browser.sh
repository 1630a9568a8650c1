# Debian's chromium for the browser tests (tests/test_ui_browser.py), from Debian's
# packages: no browser download. Installed when missing, in CI (CI=true) or when asked
# (RISK_ASSETS_INSTALL_BROWSER=1), if this shell may install packages (root, or sudo
# without a password). A failed install only warns: without chromium the browser tests
# say what is missing and skip, except in CI, where they fail.
#   source scripts/_browser.sh
if ! command -v chromium >/dev/null 2>&1 \
  && { [ "${CI:-}" = "true" ] || [ "${RISK_ASSETS_INSTALL_BROWSER:-0}" = "1" ]; }; then
  if [ "$(id -u)" -eq 0 ]; then as_root=""
  elif sudo -n -k true 2>/dev/null; then as_root="sudo -n"
  else as_root="-"
  fi
  if [ "$as_root" != "-" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests (apt-get)" >&2
    if ! { $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "warning: could not install chromium; the browser tests will say so" >&2
    fi
  else
    echo "chromium not found and not installable here: the browser tests will say so" >&2
  fi
fi
