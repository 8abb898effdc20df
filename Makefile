# SmartHall. `make run` starts the demo hall, `make test` runs every check; both first
# set up .venv (Python >= 3.11 and the pinned requirements) when needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# What every target that runs our code needs first; `make test` also needs the system
# packages of `check-system` (`make run` falls back to an embedded broker without them).
SETUP := venv

LINT      := $(BIN)/ruff check .
TYPECHECK := $(BIN)/mypy --strict queueing devices drivers signage
# Two workers, a test file each at a time: 11 min against 16 in one process on a slow
# 2-core machine (CI's budget is 15 with set-up). PYTEST_ARGS="-n 0" runs one process.
PYTEST_ARGS ?= -n 2 --dist loadfile
PYTEST    := $(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test lint typecheck run bench clean venv check-system

# Lint, type check and tests all run, so one pass shows every failure; any failure fails.
test: check-system $(SETUP)
	@rc=0; \
	echo "== $(LINT)"; $(LINT) || rc=1; \
	echo "== $(TYPECHECK)"; $(TYPECHECK) || rc=1; \
	echo "== $(PYTEST)"; $(PYTEST) || rc=1; \
	exit $$rc

lint: $(SETUP)
	$(LINT)

typecheck: $(SETUP)
	$(TYPECHECK)

# The demo hall with simulated citizens and clerks; `make run ARGS=` runs it on the wall clock.
ARGS ?= --demo
run: $(SETUP)
	$(BIN)/python run_hall.py $(ARGS)

# Every bench/*.py in its quick mode; the first failure stops.
bench: $(SETUP)
	@for f in bench/*.py; do \
	  [ -e "$$f" ] || continue; \
	  echo "== $$f --quick"; PYTHONPATH=. $(BIN)/python "$$f" --quick || exit 1; \
	done

clean:
	rm -rf $(VENV) var artifacts .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

venv: $(STAMP)

# Debian packages the tests need, each as what-shows-it:package, where what shows it is a
# command on PATH or an absolute path. What is missing is installed with apt-get when we
# are root; otherwise make stops and says what to install. libpcsclite-dev must be there
# before pip builds pyscard, so `make test` checks these before it sets up the venv.
SYSTEM_DEPS := mosquitto:mosquitto \
  pcscd:pcscd \
  /usr/include/PCSC/winscard.h:libpcsclite-dev \
  /usr/lib/pcsc/drivers/serial/libifdvpcd.so:vsmartcard-vpcd \
  vicc:python3-virtualsmartcard \
  /usr/lib/python3/dist-packages/Cryptodome:python3-pycryptodome \
  espeak-ng:espeak-ng \
  sox:sox \
  systemd-analyze:systemd \
  chromium:chromium \
  /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:fonts-noto-cjk
check-system:
	@export PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin"; missing=; \
	for dep in $(SYSTEM_DEPS); do \
	  what="$${dep%%:*}"; \
	  case "$$what" in /*) [ -e "$$what" ] ;; *) command -v "$$what" >/dev/null ;; esac \
	    || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages the tests need:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
	  echo "error: the tests need Debian packages that are missing; install them:" \
	       "sudo apt-get install$$missing" >&2; \
	  exit 1; \
	fi

# (Re)install only when a requirements file is newer than the stamp.
$(STAMP): requirements.txt requirements-pcsc.txt requirements-dev.txt | $(BIN)/pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	@touch $@

# Create the venv when missing (or left without pip by a failed attempt).
$(BIN)/pip:
	@command -v $(PYTHON) >/dev/null || { \
	  echo "error: $(PYTHON) not found; install Python >= 3.11 (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: SmartHall needs Python >= 3.11 but $(PYTHON) is $$($(PYTHON) -V 2>&1); install a newer one and run e.g. 'make PYTHON=python3.11 test'" >&2; exit 1; }
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "'$(PYTHON) -m venv' failed: installing Debian's python3-venv with apt-get"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv \
	      && $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "error: '$(PYTHON) -m venv' failed. On Debian/Ubuntu install the venv module:" \
	         "sudo apt-get install python3-venv (or python3.X-venv for your $(PYTHON)), then re-run make." >&2; \
	    exit 1; \
	  fi; }
