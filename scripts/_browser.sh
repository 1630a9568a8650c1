# Debian's chromium for the browser tests (tests/test_ui_browser.py), from Debian's
# packages: no browser download. Installed when missing and this shell may install
# packages (root, or passwordless sudo); otherwise the browser tests say what is missing
# and skip, except in CI (CI=true), where they fail.
#   source scripts/_browser.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="-"; fi
  if [ "$sudo" != "-" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests (apt-get)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not found and not installable here: the browser tests will skip" >&2
  fi
fi
