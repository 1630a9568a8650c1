# The services the tests start, from Debian's packages (no downloads of our own): chromium
# for the browser tests (tests/test_ui_browser.py), PostgreSQL for the tests on a
# database server (a throwaway cluster per test module, see tests/services.py) and Redis
# (redis-server), the celery broker of the tests on Dagster's celery executor
# (tests/celery_services.py). Each is installed when missing, in CI (CI=true) or when
# asked (RISK_ASSETS_INSTALL_SERVICES=1; RISK_ASSETS_INSTALL_BROWSER=1 still works for
# chromium), if this shell may install packages (root, or sudo without a password);
# apt-get update runs first. A failed install only warns: without the service its tests
# say what is missing and skip, except in CI, where they fail.
#   source scripts/_services.sh
wanted=()
asked=${RISK_ASSETS_INSTALL_SERVICES:-0}
if [ "${CI:-}" = "true" ] || [ "$asked" = "1" ] || [ "${RISK_ASSETS_INSTALL_BROWSER:-0}" = "1" ]; then
  command -v chromium >/dev/null 2>&1 || wanted+=(chromium)
fi
if [ "${CI:-}" = "true" ] || [ "$asked" = "1" ]; then
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || wanted+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || wanted+=(redis-server)
fi
if [ "${#wanted[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then as_root=""
  elif sudo -n -k true 2>/dev/null; then as_root="sudo -n"
  else as_root="-"
  fi
  if [ "$as_root" != "-" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${wanted[*]} from Debian's packages for the tests (apt-get)" >&2
    if ! { $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null; }; then
      echo "warning: could not install ${wanted[*]}; their tests will say so" >&2
    fi
  else
    echo "${wanted[*]} not found and not installable here: their tests will say so" >&2
  fi
fi
